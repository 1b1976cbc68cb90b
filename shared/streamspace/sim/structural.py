"""Registration-time checks of a CRD's OpenAPI schema: the structural-schema rules and patterns.

As k8s.io/apiextensions-apiserver pkg/apiserver/schema/validation.go (ValidateStructural) and
pkg/apis/apiextensions/validation/validation.go, documented under "Specifying a structural schema"
(docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions.md):
1. every node has a non-empty `type` (the root, each property, additionalProperties and items), except
   nodes with `x-kubernetes-int-or-string: true` or `x-kubernetes-preserve-unknown-fields: true`;
2. a field or item named inside `allOf`/`anyOf`/`oneOf`/`not` is also specified outside of them;
3. inside those junctors there is no `description`, `type`, `default`, `additionalProperties` or
   `nullable` (except the two `x-kubernetes-int-or-string` forms);
4. under `metadata` only `metadata.name` and `metadata.generateName` may be restricted;
plus `properties` and `additionalProperties` are mutually exclusive, and a `pattern` must compile.
The simulator evaluates patterns with Python's `re`: a pattern valid in Go's RE2 that `re` cannot compile
is refused at registration with a message saying so, never silently skipped.
"""

from __future__ import annotations

import re
from typing import Any

JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
FORBIDDEN_IN_JUNCTORS = ("description", "type", "default", "additionalProperties", "nullable")
_INT_OR_STRING = ([{"type": "integer"}, {"type": "string"}],)


def _exempt(node: dict[str, Any]) -> bool:
    return bool(node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields"))


def _children(node: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    out = [(f"{path}.properties[{name}]", child) for name, child in (node.get("properties") or {}).items()
           if isinstance(child, dict)]
    if isinstance(node.get("additionalProperties"), dict):
        out.append((f"{path}.additionalProperties", node["additionalProperties"]))
    if isinstance(node.get("items"), dict):
        out.append((f"{path}.items", node["items"]))
    return out


def _junctor_nodes(node: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for junctor in JUNCTORS:
        value = node.get(junctor)
        if isinstance(value, dict):
            out.append((f"{path}.{junctor}", value))
        elif isinstance(value, list):
            out += [(f"{path}.{junctor}[{i}]", v) for i, v in enumerate(value) if isinstance(v, dict)]
    return out


def _check_junctor(node: dict[str, Any], path: str, outside: dict[str, Any], errors: list[str]) -> None:
    for key in FORBIDDEN_IN_JUNCTORS:
        if key in node:
            errors.append(f"{path}.{key}: Forbidden: must be empty to be structural")
    for name, child in (node.get("properties") or {}).items():
        if name not in (outside.get("properties") or {}):
            errors.append(f"{path}.properties[{name}]: Forbidden: must not be specified inside the logical "
                          f"junctors allOf, anyOf, oneOf or not unless also specified outside of them")
        elif isinstance(child, dict):
            _check_junctor(child, f"{path}.properties[{name}]", outside["properties"][name], errors)
    if isinstance(node.get("items"), dict):
        if not isinstance(outside.get("items"), dict):
            errors.append(f"{path}.items: Forbidden: must not be specified inside the logical junctors allOf, "
                          f"anyOf, oneOf or not unless also specified outside of them")
        else:
            _check_junctor(node["items"], f"{path}.items", outside["items"], errors)
    for sub_path, sub in _junctor_nodes(node, path):
        _check_junctor(sub, sub_path, outside, errors)


def _walk(node: dict[str, Any], path: str, errors: list[str], *, in_metadata: bool) -> None:
    if not node.get("type") and not _exempt(node):
        errors.append(f"{path}.type: Required value: must not be empty for specified object fields"
                      if ".properties[" in path or ".additionalProperties" in path or ".items" in path
                      else f"{path}.type: Required value: must not be empty at the root")
    if "properties" in node and node.get("additionalProperties") not in (None, False):
        errors.append(f"{path}.additionalProperties: Forbidden: additionalProperties and properties are "
                      f"mutual exclusive")
    pattern = node.get("pattern")
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error as exc:
            errors.append(f"{path}.pattern: Invalid value: {pattern!r}: the simulated API server cannot evaluate "
                          f"this pattern with Python's re ({exc}); write it in the common subset of RE2 and re")
    int_or_string = node.get("x-kubernetes-int-or-string") and any(
        node.get(j) == _INT_OR_STRING[0] for j in ("anyOf", "oneOf"))
    for sub_path, sub in _junctor_nodes(node, path):
        if not int_or_string:
            _check_junctor(sub, sub_path, node, errors)
    for child_path, child in _children(node, path):
        if in_metadata and child_path.rsplit(".properties[", 1)[-1].rstrip("]") not in ("name", "generateName"):
            errors.append(f"{child_path}: Forbidden: must not be specified: only metadata.name and "
                          f"metadata.generateName may be restricted")
            continue
        _walk(child, child_path, errors, in_metadata=False)


def structural_errors(schema: dict[str, Any], path: str) -> list[str]:
    """Why `schema` (a version's openAPIV3Schema at `path`) is not structural; empty when it is."""
    errors: list[str] = []
    if not isinstance(schema, dict) or not schema:
        return [f"{path}: Required value: a structural schema is required"]
    metadata = (schema.get("properties") or {}).get("metadata")
    rest = dict(schema)
    if isinstance(metadata, dict):
        rest["properties"] = {k: v for k, v in schema["properties"].items() if k != "metadata"}
        _walk(metadata, f"{path}.properties[metadata]", errors, in_metadata=True)
    _walk(rest, path, errors, in_metadata=False)
    return errors
