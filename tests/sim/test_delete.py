"""Deletion: ownerReference cascade (recursive), Orphan, multiple owners, finalizers, namespaces."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from sim_helpers import GROUP, PLURAL, VERSION, deployment, widget


def _owner_ref(obj: dict, kind: str = "Widget", api_version: str = f"{GROUP}/{VERSION}") -> dict:
    return {"apiVersion": api_version, "kind": kind, "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def _owned_deployment(name: str, owner: dict) -> dict:
    body = deployment(name)
    body["metadata"]["ownerReferences"] = [_owner_ref(owner)]
    return body


def test_delete_cascades_to_owned_objects(custom, apps, core, ns):
    owner = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("owner"))
    apps.create_namespaced_deployment(ns, _owned_deployment("ss-owner", owner))
    core.create_namespaced_service(ns, {"metadata": {"name": "ss-owner", "ownerReferences": [_owner_ref(owner)]},
                                        "spec": {"ports": [{"port": 80}]}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "unrelated"}})
    pods = core.list_namespaced_pod(ns).items
    assert len(pods) == 1  # the kubelet's pod, owned by the Deployment: a grandchild of the widget

    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "owner")
    assert apps.list_namespaced_deployment(ns).items == []
    assert core.list_namespaced_service(ns).items == []
    assert core.list_namespaced_pod(ns).items == []
    assert [c.metadata.name for c in core.list_namespaced_config_map(ns).items] == ["unrelated"]


def test_delete_with_orphan_policy_keeps_dependents(custom, apps, ns):
    owner = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("o"))
    apps.create_namespaced_deployment(ns, _owned_deployment("dep", owner))
    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "o", propagation_policy="Orphan")
    dep = apps.read_namespaced_deployment("dep", ns)
    assert dep.metadata.owner_references is None


def test_dependent_with_another_live_owner_survives(custom, core, ns):
    a = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("a"))
    b = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("b"))
    core.create_namespaced_config_map(ns, {"metadata": {"name": "shared", "ownerReferences": [
        {**_owner_ref(a), "controller": False}, {**_owner_ref(b), "controller": False}]}})
    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "a")
    cm = core.read_namespaced_config_map("shared", ns)
    assert [r.name for r in cm.metadata.owner_references] == ["b"]
    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "b")
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("shared", ns)
    assert err.value.status == 404


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
    import time

    gone = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("gone"))
    live = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("live"))
    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "gone")
    apps.create_namespaced_deployment(ns, _owned_deployment("late-child", gone))
    apps.create_namespaced_deployment(ns, _owned_deployment("kept-child", live))
    deadline = time.monotonic() + 5
    names = {d.metadata.name for d in apps.list_namespaced_deployment(ns).items}
    while "late-child" in names and time.monotonic() < deadline:
        time.sleep(0.02)
        names = {d.metadata.name for d in apps.list_namespaced_deployment(ns).items}
    assert names == {"kept-child"}
