"""CRD structural schema: validation (422 with causes), defaulting and pruning, plus CRDs created via the API."""

from __future__ import annotations

import json
import urllib.request

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from sim_helpers import GROUP, PLURAL, VERSION, widget

from streamspace.sim.schema import validate_and_default

STATE_SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["user"],
            "properties": {
                "user": {"type": "string", "minLength": 1, "maxLength": 5},
                "state": {"type": "string", "enum": ["running", "hibernated", "terminated"], "default": "running"},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "ratio": {"type": "number"},
                "on": {"type": "boolean"},
                "when": {"type": "string", "format": "date-time"},
                "limit": {"x-kubernetes-int-or-string": True},
                "note": {"type": "string", "nullable": True},
                "items": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
                "vnc": {"type": "object", "default": {},
                        "properties": {"enabled": {"type": "boolean", "default": True},
                                       "port": {"type": "integer", "default": 3000}}},
                "webapp": {"type": "object", "properties": {"port": {"type": "integer", "default": 80}}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "res": {"type": "object", "anyOf": [{"required": ["requests"]}, {"required": ["memory"]}],
                        "properties": {"requests": {"type": "object"}, "memory": {"type": "string"}}},
            },
        },
    },
}


def test_validate_and_default_reports_kubernetes_style_messages():
    obj = {"spec": {"user": "toolong", "state": "foo", "port": 0, "ratio": "x", "on": "yes", "when": "yesterday",
                    "limit": 1.5, "items": [], "res": {}}}
    errors = validate_and_default(STATE_SCHEMA, obj)
    assert 'spec.state: Unsupported value: "foo": supported values: "running", "hibernated", "terminated"' in errors
    assert 'spec.user: Invalid value: "toolong": spec.user in body may not be longer than 5' in errors
    assert "spec.port: Invalid value: 0: spec.port in body should be greater than or equal to 1" in errors
    assert 'spec.ratio: Invalid value: "string": spec.ratio in body must be of type number: "string"' in errors
    assert 'spec.on: Invalid value: "string": spec.on in body must be of type boolean: "string"' in errors
    assert 'spec.when: Invalid value: "yesterday": spec.when in body must be of type date-time' in errors
    assert any(e.startswith("spec.limit: Invalid value") for e in errors)
    assert "spec.items: Invalid value: 0: spec.items in body should have at least 1 items" in errors
    assert any(e.startswith("spec.res: Invalid value") and "anyOf" in e for e in errors)
    assert len(errors) == 9


def test_validate_and_default_applies_defaults_recursively_and_prunes():
    obj = {"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n", "whatever": 1},
           "spec": {"user": "bob", "junk": {"a": 1}, "free": {"any": {"thing": 1}}, "labels": {"a": "b"},
                    "note": None, "limit": "50%", "when": "2025-01-02T03:04:05Z"},
           "unknownTop": 1}
    assert validate_and_default(STATE_SCHEMA, obj) == []
    assert obj["spec"]["state"] == "running"
    assert obj["spec"]["vnc"] == {"enabled": True, "port": 3000}  # default object, itself defaulted
    assert "webapp" not in obj["spec"]  # defaults only where the parent exists
    assert "junk" not in obj["spec"] and "unknownTop" not in obj
    assert obj["spec"]["free"] == {"any": {"thing": 1}}
    assert obj["metadata"] == {"name": "n", "whatever": 1}  # metadata is not the schema's business
    assert obj["spec"]["note"] is None


def test_validate_and_default_required_and_null():
    obj = {"spec": {"port": None}}
    errors = validate_and_default(STATE_SCHEMA, obj)
    assert errors == ["spec.user: Required value"]
    assert "port" not in obj["spec"]  # a null without nullable is dropped, as the API server does


def test_validate_and_default_sub_path_and_one_of():
    schema = {"type": "object", "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
              "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}
    assert validate_and_default(schema, {"a": "x"}, "spec.resources") == []
    errors = validate_and_default(schema, {"a": "x", "b": "y"}, "spec.resources")
    assert len(errors) == 1 and errors[0].startswith("spec.resources: Invalid value") and "oneOf" in errors[0]


def test_crd_schema_rejects_bad_object_with_422(custom, ns):
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL,
                                               widget("bad", owner="Not_DNS", size=11, color="pink"))
    body = json.loads(err.value.body)
    assert err.value.status == 422 and body["reason"] == "Invalid" and body["kind"] == "Status"
    fields = {c["field"]: c["reason"] for c in body["details"]["causes"]}
    assert fields == {"spec.owner": "FieldValueInvalid", "spec.size": "FieldValueInvalid",
                      "spec.color": "FieldValueNotSupported"}
    assert body["message"].startswith('Widget.test.stream.space "bad" is invalid: [')
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget", "metadata": {"name": "bad"}, "spec": {"size": 1}})
    assert json.loads(err.value.body)["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.owner"}]
    with pytest.raises(ApiException):
        custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "bad")


def test_crd_defaults_applied(custom, ns):
    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, widget("d", parts=[{"name": "a"}, {"name": "b", "count": 4}], junk=True,
                                           extra={"free": {"form": [1]}}, port=8080))
    spec = created["spec"]
    assert spec["color"] == "red" and spec["timeout"] == "30m"
    assert spec["display"] == {"enabled": True, "port": 3000}
    assert [p["count"] for p in spec["parts"]] == [1, 4]
    assert "junk" not in spec
    assert spec["extra"] == {"free": {"form": [1]}}
    assert spec["port"] == 8080


def test_other_served_version_shares_storage(custom, ns):
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("multi"))
    other = custom.get_namespaced_custom_object(GROUP, "v1beta1", ns, PLURAL, "multi")
    assert other["apiVersion"] == f"{GROUP}/v1beta1" and other["spec"]["owner"] == "bob"


def test_crd_created_through_the_api_is_served_and_removed_on_delete(sim, api_client, custom, ns):
    ext = client.ApiextensionsV1Api(api_client)
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gizmos.dyn.stream.space"},
        "spec": {"group": "dyn.stream.space", "scope": "Namespaced",
                 "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo", "shortNames": ["gz"]},
                 "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {
                                   "type": "object", "properties": {"n": {"type": "integer", "default": 7}}}}}}}]},
    }
    created = ext.create_custom_resource_definition(crd)
    assert {c.type for c in created.status.conditions} == {"Established", "NamesAccepted"}
    gz = custom.create_namespaced_custom_object("dyn.stream.space", "v1", ns, "gizmos", {
        "apiVersion": "dyn.stream.space/v1", "kind": "Gizmo", "metadata": {"name": "g"}, "spec": {}})
    assert gz["spec"]["n"] == 7
    with urllib.request.urlopen(f"{sim.url}/apis/dyn.stream.space/v1") as resp:
        resources = json.loads(resp.read())
    names = {r["name"]: r for r in resources["resources"]}
    assert names["gizmos"]["shortNames"] == ["gz"] and "gizmos/status" in names
    ext.delete_custom_resource_definition("gizmos.dyn.stream.space")
    with pytest.raises(ApiException) as err:
        custom.get_namespaced_custom_object("dyn.stream.space", "v1", ns, "gizmos", "g")
    assert err.value.status == 404


def test_cluster_scoped_custom_resource(custom):
    body = {"apiVersion": f"{GROUP}/v1", "kind": "Gadget", "metadata": {"name": "gd"}, "spec": {}}
    created = custom.create_cluster_custom_object(GROUP, "v1", "gadgets", body)
    assert created["spec"]["level"] == 5 and "namespace" not in created["metadata"]
    assert [g["metadata"]["name"] for g in custom.list_cluster_custom_object(GROUP, "v1", "gadgets")["items"]] == ["gd"]
    custom.delete_cluster_custom_object(GROUP, "v1", "gadgets", "gd")


def test_strict_field_validation_refuses_unknown_fields_with_400(custom, ns):
    body = widget("strict", unknown=1)
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body, field_validation="Strict")
    assert err.value.status == 400 and 'unknown field \\"spec.unknown\\"' in err.value.body
    assert "unknown" not in custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)["spec"]
