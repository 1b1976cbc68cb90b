"""CRDs are checked when registered, as the apiextensions API server checks them: a schema that is not
structural is refused with the field at fault, and so is a pattern the simulator cannot evaluate (instead of
being skipped when objects are validated). sim/structural.py cites the rules."""

from __future__ import annotations

import json
import uuid

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException


def _crd(schema: dict) -> dict:
    plural = f"things{uuid.uuid4().hex[:6]}"
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.structural.example.com"},
            "spec": {"group": "structural.example.com", "scope": "Namespaced",
                     "names": {"plural": plural, "singular": plural[:-1], "kind": plural.title()[:-1]},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": schema}}]}}


def _refused(ext: client.ApiextensionsV1Api, schema: dict) -> list[str]:
    with pytest.raises(ApiException) as refused:
        ext.create_custom_resource_definition(_crd(schema))
    assert refused.value.status == 422
    return [f'{c["field"]}: {c["message"]}' for c in json.loads(refused.value.body)["details"]["causes"]]


@pytest.fixture
def ext(api_client) -> client.ApiextensionsV1Api:
    return client.ApiextensionsV1Api(api_client)


def test_a_field_without_a_type_is_not_structural(ext):
    causes = _refused(ext, {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "size": {"description": "no type"}}}}})
    assert any("properties[spec].properties[size].type: Required value" in c for c in causes), causes


def test_junctors_may_not_introduce_fields_or_types(ext):
    causes = _refused(ext, {"type": "object", "properties": {"spec": {
        "type": "object", "properties": {"a": {"type": "string"}},
        "anyOf": [{"properties": {"b": {"type": "string"}}}, {"required": ["a"]}]}}})
    assert any("anyOf[0].properties[b]: Forbidden" in c for c in causes), causes
    assert any("anyOf[0].properties[b].type: Forbidden" in c or "properties[b]: Forbidden" in c for c in causes)


def test_metadata_may_restrict_only_name_and_generate_name(ext):
    causes = _refused(ext, {"type": "object", "properties": {"metadata": {"type": "object", "properties": {
        "labels": {"type": "object"}}}}})
    assert any("properties[metadata].properties[labels]: Forbidden" in c for c in causes), causes
    ext.create_custom_resource_definition(_crd({"type": "object", "properties": {"metadata": {
        "type": "object", "properties": {"name": {"type": "string", "maxLength": 20}}}}}))


def test_a_pattern_the_simulator_cannot_evaluate_is_refused_clearly(ext):
    # RE2's Unicode class \pL compiles in Go, not in Python: refused at registration, never skipped later.
    causes = _refused(ext, {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "code": {"type": "string", "pattern": "^\\pL+$"}}}}})
    assert any("cannot evaluate this pattern" in c for c in causes), causes


def test_int_or_string_and_preserved_fields_need_no_type(ext):
    spec = {"type": "object", "properties": {
        "port": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        "free": {"x-kubernetes-preserve-unknown-fields": True}}}
    ext.create_custom_resource_definition(_crd({"type": "object", "properties": {"spec": spec}}))
