"""Server-side apply merges lists as the real schemas say: built-in kinds by the keys in the
official OpenAPI definitions (volumeMounts by mountPath), custom resources atomically unless the
CRD declares x-kubernetes-list-type: map."""

from __future__ import annotations

import pytest
from kubernetes.client.rest import ApiException
from sim_helpers import GROUP, PLURAL, VERSION, deployment, widget

APPLY = "application/apply-patch+yaml"


def _with_mounts(name: str, mounts: list[dict]) -> dict:
    body = deployment(name)
    pod = body["spec"]["template"]["spec"]
    pod["volumes"] = [{"name": "home", "emptyDir": {}}]
    pod["containers"][0]["volumeMounts"] = mounts
    return body


def _mounts(apps, name: str, ns: str) -> list[tuple[str, str]]:
    container = apps.read_namespaced_deployment(name, ns).spec.template.spec.containers[0]
    return sorted((m.name, m.mount_path) for m in container.volume_mounts or [])


def test_two_mounts_of_one_volume_are_two_items_keyed_by_mount_path(apps, ns):
    both = [{"name": "home", "mountPath": "/config"}, {"name": "home", "mountPath": "/data"}]
    apps.patch_namespaced_deployment("mounts", ns, _with_mounts("mounts", both), field_manager="a",
                                     _content_type=APPLY)
    assert _mounts(apps, "mounts", ns) == [("home", "/config"), ("home", "/data")]
    # Another manager adds its own mount: a keyed list merges item by item, nobody conflicts.
    extra = _with_mounts("mounts", [{"name": "home", "mountPath": "/extra"}])
    apps.patch_namespaced_deployment("mounts", ns, extra, field_manager="b", _content_type=APPLY)
    assert _mounts(apps, "mounts", ns) == [("home", "/config"), ("home", "/data"), ("home", "/extra")]
    # The first manager drops /config from its configuration: only that item goes.
    apps.patch_namespaced_deployment("mounts", ns, _with_mounts("mounts", both[1:]), field_manager="a",
                                     _content_type=APPLY)
    assert _mounts(apps, "mounts", ns) == [("home", "/data"), ("home", "/extra")]


def test_a_custom_resource_list_without_a_list_type_is_atomic(custom, ns):
    custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "atomic",
                                          widget("atomic", parts=[{"name": "x"}]), field_manager="a",
                                          _content_type=APPLY)
    # The whole list belongs to "a": another manager's different list is a conflict ...
    with pytest.raises(ApiException) as conflict:
        custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "atomic",
                                              widget("atomic", parts=[{"name": "y"}]), field_manager="b",
                                              _content_type=APPLY)
    assert conflict.value.status == 409 and "spec.parts" in conflict.value.body
    # ... and forcing it replaces the list whole instead of merging items by name.
    forced = custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "atomic",
                                                   widget("atomic", parts=[{"name": "y"}]), field_manager="b",
                                                   force=True, _content_type=APPLY)
    assert [p["name"] for p in forced["spec"]["parts"]] == ["y"]
