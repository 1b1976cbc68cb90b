"""Deletion as Kubernetes does it: the garbage collector removes dependents asynchronously (Background),
before its owner (Foreground, blockOwnerDeletion) or not at all (Orphan); finalizers, pods' grace periods,
namespaces that stay Terminating until empty, owners resolved within the dependent's namespace
(sim/gc.py and Api.delete cite the Kubernetes source). Outcomes of the collector are waited for."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from sim_helpers import GROUP, PLURAL, VERSION, deployment, eventually, widget


def _owner_ref(obj: dict, kind: str = "Widget", api_version: str = f"{GROUP}/{VERSION}") -> dict:
    return {"apiVersion": api_version, "kind": kind, "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def _owned_deployment(name: str, owner: dict) -> dict:
    body = deployment(name)
    body["metadata"]["ownerReferences"] = [_owner_ref(owner)]
    return body


def _exists(read, *args) -> bool:
    try:
        read(*args)
    except ApiException as exc:
        assert exc.status == 404
        return False
    return True


def test_delete_cascades_to_owned_objects(custom, apps, core, ns):
    owner = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("owner"))
    apps.create_namespaced_deployment(ns, _owned_deployment("ss-owner", owner))
    core.create_namespaced_service(ns, {"metadata": {"name": "ss-owner", "ownerReferences": [_owner_ref(owner)]},
                                        "spec": {"ports": [{"port": 80}]}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "unrelated"}})
    pods = core.list_namespaced_pod(ns).items
    assert len(pods) == 1  # the kubelet's pod, owned by the Deployment: a grandchild of the widget

    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "owner")
    eventually(lambda: apps.list_namespaced_deployment(ns).items == [], "the owned Deployment is collected")
    eventually(lambda: core.list_namespaced_service(ns).items == [], "the owned Service is collected")
    eventually(lambda: core.list_namespaced_pod(ns).items == [], "the Deployment's pod is collected")
    assert [c.metadata.name for c in core.list_namespaced_config_map(ns).items] == ["unrelated"]


def test_delete_with_orphan_policy_keeps_dependents(custom, apps, ns):
    owner = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("o"))
    apps.create_namespaced_deployment(ns, _owned_deployment("dep", owner))
    answer = custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "o", propagation_policy="Orphan")
    assert answer["metadata"]["deletionTimestamp"] and answer["metadata"]["finalizers"] == ["orphan"]
    eventually(lambda: apps.read_namespaced_deployment("dep", ns).metadata.owner_references is None,
               "the collector removes the reference to the orphaning owner")
    eventually(lambda: not custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"],
               "then the owner's orphan finalizer and the owner")
    assert apps.read_namespaced_deployment("dep", ns).status.ready_replicas == 1


def test_dependent_with_another_live_owner_survives(custom, core, ns):
    a = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("a"))
    b = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("b"))
    core.create_namespaced_config_map(ns, {"metadata": {"name": "shared", "ownerReferences": [
        {**_owner_ref(a), "controller": False}, {**_owner_ref(b), "controller": False}]}})
    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "a")
    eventually(lambda: [r.name for r in core.read_namespaced_config_map("shared", ns).metadata.owner_references]
               == ["b"], "the reference to the deleted owner is removed, the dependent kept")
    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "b")
    eventually(lambda: not _exists(core.read_namespaced_config_map, "shared", ns), "collected with its last owner")


def test_finalizers_hold_deletion_until_removed(custom, ns):
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL,
                                           {**widget("f"), "metadata": {"name": "f", "finalizers": ["x/y"]}})
    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "f")
    obj = custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "f")
    assert obj["metadata"]["deletionTimestamp"]
    custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "f", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as err:
        custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "f")
    assert err.value.status == 404


def test_delete_missing_is_404_and_precondition_mismatch_is_409(core, ns):
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map("none", ns)
    assert err.value.status == 404
    core.create_namespaced_config_map(ns, {"metadata": {"name": "p"}})
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map("p", ns, body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid="00000000-0000-0000-0000-000000000000")))
    assert err.value.status == 409
    core.read_namespaced_config_map("p", ns)


def test_namespace_delete_removes_its_objects(core, custom, ns):
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("gone"))
    core.create_namespaced_config_map(ns, {"metadata": {"name": "gone"}})
    core.delete_namespace(ns)
    eventually(lambda: not _exists(core.read_namespace, ns), "the namespace controller empties and removes it")
    assert all(i["metadata"]["namespace"] != ns
               for i in custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"])
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("gone", ns)


def test_delete_collection_by_label(core, ns):
    for name, team in (("a", "x"), ("b", "x"), ("c", "y")):
        core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": {"team": team}}})
    core.delete_collection_namespaced_config_map(ns, label_selector="team=x")
    assert [c.metadata.name for c in core.list_namespaced_config_map(ns).items] == ["c"]


def test_garbage_collector_removes_a_dependent_written_after_its_owner_was_deleted(custom, apps, ns):
    """A controller acting on a stale event may re-create a child of a deleted owner; the garbage
    collector removes it shortly afterwards, as on a real cluster. A child of a live owner stays."""
    gone = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("gone"))
    live = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("live"))
    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "gone")
    apps.create_namespaced_deployment(ns, _owned_deployment("late-child", gone))
    apps.create_namespaced_deployment(ns, _owned_deployment("kept-child", live))
    eventually(lambda: {d.metadata.name for d in apps.list_namespaced_deployment(ns).items} == {"kept-child"},
               "the late child of the deleted owner is collected")


def test_foreground_deletion_keeps_the_owner_until_blocking_dependents_are_gone(custom, core, ns):
    owner = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("fg"))
    core.create_namespaced_config_map(ns, {"metadata": {"name": "blocker", "finalizers": ["example.com/hold"],
                                                        "ownerReferences": [_owner_ref(owner)]}})
    answer = custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "fg",
                                                    propagation_policy="Foreground")
    assert answer["metadata"]["deletionTimestamp"] and answer["metadata"]["finalizers"] == ["foregroundDeletion"]
    # The collector deletes the dependent, whose own finalizer holds it, and so the owner waits.
    eventually(lambda: core.read_namespaced_config_map("blocker", ns).metadata.deletion_timestamp,
               "the blocking dependent is being deleted")
    held = custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "fg")
    assert held["metadata"]["finalizers"] == ["foregroundDeletion"]
    core.patch_namespaced_config_map("blocker", ns, {"metadata": {"finalizers": None}})
    eventually(lambda: not _exists(core.read_namespaced_config_map, "blocker", ns), "the dependent is gone")
    eventually(lambda: not _exists(custom.get_namespaced_custom_object, GROUP, VERSION, ns, PLURAL, "fg"),
               "then the owner")


def test_a_running_pod_terminates_gracefully_and_an_unscheduled_one_goes_at_once(core, ns):
    pod = {"metadata": {"name": "graceful"}, "spec": {"terminationGracePeriodSeconds": 45,
                                                      "containers": [{"name": "main", "image": "nginx:1.27"}]}}
    core.create_namespaced_pod(ns, pod)
    assert core.read_namespaced_pod("graceful", ns).status.phase == "Running"
    answer = core.delete_namespaced_pod("graceful", ns)
    assert answer.metadata.deletion_grace_period_seconds == 45 and answer.metadata.deletion_timestamp
    eventually(lambda: not _exists(core.read_namespaced_pod, "graceful", ns), "the kubelet finishes the deletion")
    unscheduled = {"metadata": {"name": "nowhere"}, "spec": {"nodeSelector": {"no": "such-node"},
                                                             "containers": [{"name": "main", "image": "nginx:1.27"}]}}
    core.create_namespaced_pod(ns, unscheduled)
    core.delete_namespaced_pod("nowhere", ns)
    assert not _exists(core.read_namespaced_pod, "nowhere", ns)  # no kubelet to wait for: removed at once


def test_a_terminating_namespace_refuses_new_content_and_waits_for_finalizers(core, ns):
    core.create_namespaced_config_map(ns, {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "plain"}})
    core.delete_namespace(ns)
    assert core.read_namespace(ns).status.phase == "Terminating"
    eventually(lambda: not _exists(core.read_namespaced_config_map, "plain", ns), "the content is deleted")
    namespace = eventually(lambda: (lambda n: n if n.status.conditions else None)(core.read_namespace(ns)),
                           "the namespace reports what remains")
    assert namespace.status.phase == "Terminating"
    assert any(c.type == "NamespaceFinalizersRemaining" and "example.com/hold" in c.message
               for c in namespace.status.conditions)
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "late"}})
    assert refused.value.status == 403 and "because it is being terminated" in refused.value.body
    core.patch_namespaced_config_map("held", ns, {"metadata": {"finalizers": None}})
    eventually(lambda: not _exists(core.read_namespace, ns), "the namespace is finalized once empty")


def test_an_owner_in_another_namespace_counts_as_absent(custom, core, ns):
    elsewhere = f"{ns}-x"
    core.create_namespace({"metadata": {"name": elsewhere}})
    owner = custom.create_namespaced_custom_object(GROUP, VERSION, elsewhere, PLURAL, widget("far"))
    core.create_namespaced_config_map(ns, {"metadata": {"name": "cross", "ownerReferences": [_owner_ref(owner)]}})
    eventually(lambda: not _exists(core.read_namespaced_config_map, "cross", ns),
               "a cross-namespace owner reference is treated as absent and the dependent collected")
    assert custom.get_namespaced_custom_object(GROUP, VERSION, elsewhere, PLURAL, "far")
