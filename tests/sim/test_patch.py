"""Merge, JSON, strategic merge patch and server-side apply against the simulated API server."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.rest import ApiException
from sim_helpers import GROUP, PLURAL, VERSION, deployment, widget

APPLY = "application/apply-patch+yaml"


def test_json_patch_and_merge_patch(custom, ns):
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("p", tags=["a", "b"]))
    merged = custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "p", {"spec": {"size": 4, "color": None, "tags": ["z"]}},
        _content_type="application/merge-patch+json")
    # null deletes, then the schema default comes back; lists are replaced whole.
    assert (merged["spec"]["size"], merged["spec"]["color"], merged["spec"]["tags"]) == (4, "red", ["z"])
    patched = custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "p",
        [{"op": "test", "path": "/spec/size", "value": 4},
         {"op": "replace", "path": "/spec/size", "value": 5},
         {"op": "add", "path": "/spec/tags/-", "value": "y"},
         {"op": "remove", "path": "/spec/timeout"}],
        _content_type="application/json-patch+json")
    assert patched["spec"]["size"] == 5 and patched["spec"]["tags"] == ["z", "y"]
    assert patched["spec"]["timeout"] == "30m"  # removed, then defaulted again by the schema
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, "p", [{"op": "test", "path": "/spec/size", "value": 99}],
            _content_type="application/json-patch+json")
    assert err.value.status == 422
    assert custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "p")["spec"]["size"] == 5


def test_patch_that_violates_schema_is_422_and_changes_nothing(custom, ns):
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("v"))
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "v", {"spec": {"color": "pink"}})
    assert err.value.status == 422
    assert custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "v")["spec"]["color"] == "red"


def test_strategic_merge_patch_merges_containers_by_name(apps, ns):
    body = deployment("web")
    body["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "busybox:1"})
    apps.create_namespaced_deployment(ns, body)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:1.28",
                                                            "env": [{"name": "A", "value": "1"}]}]}}}}
    out = apps.patch_namespaced_deployment("web", ns, patch)  # the client's default is strategic merge
    containers = {c.name: c for c in out.spec.template.spec.containers}
    assert set(containers) == {"main", "side"}
    assert containers["main"].image == "nginx:1.28" and containers["side"].image == "busybox:1"
    assert containers["main"].ports[0].container_port == 8080
    out = apps.patch_namespaced_deployment(
        "web", ns, {"spec": {"template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}}})
    assert [c.name for c in out.spec.template.spec.containers] == ["main"]


def test_strategic_merge_patch_on_custom_resource_is_415(custom, ns):
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("s"))
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "s", {"spec": {"size": 3}},
                                              _content_type="application/strategic-merge-patch+json")
    assert err.value.status == 415


def test_server_side_apply_creates_merges_and_removes_dropped_fields(custom, ns):
    def apply(spec: dict, manager: str = "reconciler", labels: dict | None = None) -> dict:
        body = widget("ssa", **spec)
        body["spec"] = spec
        if labels:
            body["metadata"]["labels"] = labels
        return custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "ssa", body, _content_type=APPLY,
                                                     field_manager=manager, force=True)

    assert apply({"owner": "bob", "size": 2, "tags": ["a"], "parts": [{"name": "x", "count": 2}]},
                 labels={"keep": "1", "drop": "1"}) is None  # 201 Created: the client returns no body for it
    obj = custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "ssa")
    assert obj["spec"]["tags"] == ["a"] and obj["metadata"]["labels"] == {"keep": "1", "drop": "1"}
    entry = next(m for m in obj["metadata"]["managedFields"] if m["manager"] == "reconciler")
    assert entry["operation"] == "Apply" and "f:tags" in entry["fieldsV1"]["f:spec"]

    # Another writer adds a field the reconciler never applied; it must survive the reconciler's applies.
    custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "ssa", {"spec": {"port": "http"}},
                                          field_manager="human")
    obj = apply({"owner": "bob", "size": 3, "parts": [{"name": "y"}]}, labels={"keep": "1"})
    spec = obj["spec"]
    assert spec["size"] == 3
    assert "tags" not in spec  # applied before, dropped now: removed
    assert [p["name"] for p in spec["parts"]] == ["y"]  # keyed list item x was ours and is gone
    assert spec["parts"][0]["count"] == 1  # defaulted by the schema
    assert spec["port"] == "http"  # owned by someone else: kept
    assert obj["metadata"]["labels"] == {"keep": "1"}
    assert obj["metadata"]["generation"] == 3
    managers = {m["manager"]: m["operation"] for m in obj["metadata"]["managedFields"]}
    assert managers == {"reconciler": "Apply", "human": "Update"}

    # Re-applying the same configuration is a no-op: same resourceVersion.
    again = apply({"owner": "bob", "size": 3, "parts": [{"name": "y"}]}, labels={"keep": "1"})
    assert again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


def test_server_side_apply_accepts_yaml_and_detects_conflicts_without_force(sim, custom, ns):
    import urllib.request

    yaml_body = (f"apiVersion: {GROUP}/{VERSION}\nkind: Widget\nmetadata:\n  name: y\n"
                 "spec:\n  owner: alice\n  size: 1\n").encode()
    req = urllib.request.Request(
        f"{sim.url}/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}/y?fieldManager=first", data=yaml_body,
        headers={"Content-Type": APPLY}, method="PATCH")
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 201
        assert json.loads(resp.read())["spec"]["owner"] == "alice"
    body = widget("y", owner="alice", size=5)
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "y", body, _content_type=APPLY,
                                              field_manager="second")
    status = json.loads(err.value.body)
    assert err.value.status == 409 and status["reason"] == "Conflict"
    assert status["message"] == 'Apply failed with 1 conflict: conflict with "first": .spec.size'
    assert custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "y")["spec"]["size"] == 1
    forced = custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "y", body, _content_type=APPLY,
                                                   field_manager="second", force=True)
    assert forced["spec"]["size"] == 5


def test_apply_requires_field_manager(custom, ns):
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "z", widget("z"), _content_type=APPLY)
    assert err.value.status == 400


def test_server_side_apply_of_deployment_keeps_defaults_and_merges_containers(apps, ns):
    body = deployment("applied")
    out = apps.patch_namespaced_deployment("applied", ns, body, _content_type=APPLY, field_manager="rec",
                                           force=True)
    assert out.spec.strategy.type == "RollingUpdate"
    body["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    out = apps.patch_namespaced_deployment("applied", ns, body, _content_type=APPLY, field_manager="rec",
                                           force=True)
    assert out.spec.template.spec.containers[0].image == "nginx:1.28"
    assert out.metadata.generation == 2
