"""The status subresource: main-resource writes cannot change status, status writes cannot change the rest."""

from __future__ import annotations

from sim_helpers import GROUP, PLURAL, VERSION, deployment, widget

APPLY = "application/apply-patch+yaml"


def test_status_subresource_isolated_from_spec_writes(custom, ns):
    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, {**widget("st"), "status": {"phase": "Ready"}})
    assert "status" not in created  # status on create is dropped
    custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "st",
                                          {"spec": {"size": 3}, "status": {"phase": "Failed"}})
    obj = custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "st")
    assert obj["spec"]["size"] == 3 and "status" not in obj

    out = custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, ns, PLURAL, "st", {"spec": {"size": 9}, "status": {"phase": "Pending", "message": "m"}})
    assert out["status"] == {"phase": "Pending", "message": "m"} and out["spec"]["size"] == 3

    obj = custom.get_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, "st")
    obj["status"]["phase"] = "Ready"
    obj["spec"]["size"] = 8
    out = custom.replace_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, "st", obj)
    assert out["status"]["phase"] == "Ready" and out["spec"]["size"] == 3
    assert out["metadata"]["generation"] == 2

    obj = custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "st")
    obj["status"] = {"phase": "Failed"}
    obj["spec"]["size"] = 4
    out = custom.replace_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "st", obj)
    assert out["status"]["phase"] == "Ready" and out["spec"]["size"] == 4


def test_status_is_schema_validated(custom, ns):
    import pytest
    from kubernetes.client.rest import ApiException

    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("sv"))
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, "sv", {"status": {"phase": "Nope"}})
    assert err.value.status == 422 and "status.phase: Unsupported value" in err.value.body


def test_server_side_apply_on_status_removes_dropped_conditions(custom, ns):
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("sa"))

    def apply_status(status: dict) -> dict:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget", "metadata": {"name": "sa"}, "status": status}
        return custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, "sa", body,
                                                            _content_type=APPLY, field_manager="rec", force=True)

    out = apply_status({"phase": "Ready", "message": "up", "observedGeneration": 1,
                        "lastSeen": "2025-01-01T00:00:00Z"})
    assert out["status"]["phase"] == "Ready" and out["spec"]["size"] == 2
    entry = next(m for m in out["metadata"]["managedFields"] if m["manager"] == "rec")
    assert entry["subresource"] == "status"
    out = apply_status({"phase": "Failed", "observedGeneration": 1})
    assert out["status"] == {"phase": "Failed", "observedGeneration": 1}
    assert out["metadata"]["generation"] == 1


def test_deployment_status_write_ignores_spec(apps, ns):
    apps.create_namespaced_deployment(ns, deployment("d", replicas=0))
    out = apps.patch_namespaced_deployment_status("d", ns, {"spec": {"replicas": 5},
                                                            "status": {"collisionCount": 3}})
    assert out.spec.replicas == 0 and out.status.collision_count == 3
    assert apps.read_namespaced_deployment("d", ns).spec.replicas == 0
    before = apps.read_namespaced_deployment("d", ns)
    out = apps.patch_namespaced_deployment("d", ns, {"status": {"collisionCount": 7}})
    assert out.status.collision_count == before.status.collision_count
    assert out.metadata.resource_version == before.metadata.resource_version


def test_a_uid_guards_an_update_but_never_a_status_patch(custom, ns):
    """As the API server (k8s.io/apiserver): a PUT's metadata.uid is a storage precondition
    (rest.defaultUpdatedObjectInfo.Preconditions: 409), on /status too. A PATCH has none (the patch
    handler passes DefaultUpdatedObjectInfo(nil, ...)): a uid it sets is refused as immutable on the
    main resource (422) and silently dropped on a custom resource's status, whose strategy copies the
    stored object first (statusStrategy.PrepareForUpdate). Only a resourceVersion guards that."""
    import pytest
    from kubernetes.client.rest import ApiException

    created = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("ud"))
    other = "00000000-0000-4000-8000-000000000000"
    stale = {**created, "metadata": {**created["metadata"], "uid": other}}
    for replace in (custom.replace_namespaced_custom_object, custom.replace_namespaced_custom_object_status):
        with pytest.raises(ApiException) as refused:
            replace(GROUP, VERSION, ns, PLURAL, "ud", {**stale, "status": {"phase": "Failed"}})
        assert refused.value.status == 409 and f"UID in precondition: {other}" in refused.value.body
    with pytest.raises(ApiException) as immutable:
        custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "ud", {"metadata": {"uid": other}})
    assert immutable.value.status == 422 and "metadata.uid" in immutable.value.body
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget", "metadata": {"name": "ud", "uid": other},
            "status": {"phase": "Ready"}}
    out = custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, "ud", body,
                                                       _content_type=APPLY, field_manager="rec", force=True)
    assert out["status"]["phase"] == "Ready" and out["metadata"]["uid"] == created["metadata"]["uid"]
    body["metadata"] = {"name": "ud", "resourceVersion": created["metadata"]["resourceVersion"]}
    with pytest.raises(ApiException) as moved_on:
        custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, "ud", body,
                                                     _content_type=APPLY, field_manager="rec", force=True)
    assert moved_on.value.status == 409
