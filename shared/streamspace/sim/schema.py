"""Structural OpenAPI v3 schema validation, defaulting and pruning, as the API server does for CRDs.

Order follows the API server: prune unknown fields, apply defaults, then validate; all in one walk so
a default that introduces an object is itself defaulted and validated. Messages mimic the
API server's field errors so tests written against the simulation read like real-cluster output.
"""

from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from typing import Any

__all__ = ["validate_and_default", "check"]

# Top-level keys the API server never prunes or validates against the CR schema.
_ROOT_KEEP = ("apiVersion", "kind", "metadata")
_DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?$"
)


def validate_and_default(schema: dict[str, Any], obj: Any, path: str = "") -> list[str]:
    """Prune, default and validate ``obj`` in place against ``schema``; return error strings.

    ``path`` is the field path of ``obj`` ("" for a whole custom resource, whose apiVersion, kind and
    metadata are then left alone as the API server does).
    """
    errors: list[str] = []
    _walk(schema or {}, obj, path, errors, mutate=True, root=(path == ""))
    return errors


def check(schema: dict[str, Any], obj: Any, path: str = "") -> list[str]:
    """Validate only: no defaulting, no pruning (used for oneOf/anyOf/allOf/not branches)."""
    errors: list[str] = []
    _walk(schema or {}, obj, path, errors, mutate=False, root=False)
    return errors


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(_type_name(value))


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _type_ok(expected: str, value: Any) -> bool:
    if expected == "object":
        return isinstance(value, dict)
    if expected == "array":
        return isinstance(value, list)
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "integer":
        if isinstance(value, bool):
            return False
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if expected == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True


@lru_cache(maxsize=512)
def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        # Go RE2 syntax Python cannot read: skip rather than reject valid objects.
        return None


def _invalid(errors: list[str], path: str, value: Any, detail: str) -> None:
    shown = path or "<root>"
    errors.append(f"{shown}: Invalid value: {_fmt(value)}: {shown} in body {detail}")


def _walk(schema: dict[str, Any], value: Any, path: str, errors: list[str], *, mutate: bool, root: bool) -> None:
    shown = path or "<root>"
    int_or_string = bool(schema.get("x-kubernetes-int-or-string"))
    typ = schema.get("type")

    if value is None:
        if not schema.get("nullable") and typ:
            errors.append(f"{shown}: Invalid value: \"null\": {shown} in body must be of type {typ}: \"null\"")
        return

    if int_or_string:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            errors.append(
                f"{shown}: Invalid value: {json.dumps(_type_name(value))}: {shown} in body must be of type "
                f"integer or string: {json.dumps(_type_name(value))}"
            )
            return
    elif typ and not _type_ok(typ, value):
        errors.append(
            f"{shown}: Invalid value: {json.dumps(_type_name(value))}: {shown} in body must be of type "
            f"{typ}: {json.dumps(_type_name(value))}"
        )
        return

    if isinstance(value, dict):
        _walk_object(schema, value, path, errors, mutate=mutate, root=root)
    elif isinstance(value, list):
        _walk_array(schema, value, path, errors, mutate=mutate)
    else:
        _check_scalar(schema, value, path, errors)

    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(_fmt(v) for v in schema["enum"])
        errors.append(f"{shown}: Unsupported value: {_fmt(value)}: supported values: {supported}")

    _check_combinators(schema, value, path, errors)


def _walk_object(
    schema: dict[str, Any], value: dict[str, Any], path: str, errors: list[str], *, mutate: bool, root: bool
) -> None:
    props: dict[str, Any] = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    embedded = bool(schema.get("x-kubernetes-embedded-resource"))
    keep = _ROOT_KEEP if (root or embedded) else ()

    if mutate:
        for key in list(value):
            if key in keep:
                continue
            sub = props.get(key)
            if sub is None and isinstance(additional, dict):
                sub = additional
            # Nulls are dropped unless the field allows them (then kept) or has a default (then re-defaulted).
            if value[key] is None and sub is not None and not sub.get("nullable"):
                del value[key]
                continue
            if sub is None and not preserve and additional is not True:
                del value[key]
        for key, sub in props.items():
            if key not in value and isinstance(sub, dict) and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])

    for req in schema.get("required") or ():
        if req not in value:
            errors.append(f"{_join(path, req)}: Required value")

    for key in list(value):
        if key in keep:
            continue
        sub = props.get(key)
        if sub is None and isinstance(additional, dict):
            sub = additional
        if sub is not None:
            _walk(sub, value[key], _join(path, key), errors, mutate=mutate, root=False)

    n = len(value)
    if "minProperties" in schema and n < schema["minProperties"]:
        _invalid(errors, path, n, f"should have at least {schema['minProperties']} properties")
    if "maxProperties" in schema and n > schema["maxProperties"]:
        _invalid(errors, path, n, f"should have at most {schema['maxProperties']} properties")


def _walk_array(schema: dict[str, Any], value: list[Any], path: str, errors: list[str], *, mutate: bool) -> None:
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            if mutate and item is None and not items.get("nullable") and "default" in items:
                value[i] = item = copy.deepcopy(items["default"])
            _walk(items, item, f"{path}[{i}]", errors, mutate=mutate, root=False)
    n = len(value)
    if "minItems" in schema and n < schema["minItems"]:
        _invalid(errors, path, n, f"should have at least {schema['minItems']} items")
    if "maxItems" in schema and n > schema["maxItems"]:
        _invalid(errors, path, n, f"must have at most {schema['maxItems']} items")
    if schema.get("uniqueItems"):
        seen: list[Any] = []
        for i, item in enumerate(value):
            if item in seen:
                errors.append(f"{path}[{i}]: Duplicate value: {_fmt(item)}")
            seen.append(item)
    if schema.get("x-kubernetes-list-type") == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen_keys: set[str] = set()
        for i, item in enumerate(value):
            if isinstance(item, dict) and keys:
                k = json.dumps([item.get(x) for x in keys])
                if k in seen_keys:
                    errors.append(f"{path}[{i}]: Duplicate value: {json.dumps({x: item.get(x) for x in keys})}")
                seen_keys.add(k)
    elif schema.get("x-kubernetes-list-type") == "set":
        seen_set: list[Any] = []
        for i, item in enumerate(value):
            if item in seen_set:
                errors.append(f"{path}[{i}]: Duplicate value: {_fmt(item)}")
            seen_set.append(item)


def _check_scalar(schema: dict[str, Any], value: Any, path: str, errors: list[str]) -> None:
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            _invalid(errors, path, value, f"should be at least {schema['minLength']} chars long")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            _invalid(errors, path, value, f"may not be longer than {schema['maxLength']}")
        pattern = schema.get("pattern")
        if pattern:
            rx = _compile(pattern)
            if rx is not None and not rx.search(value):
                _invalid(errors, path, value, f"should match '{pattern}'")
        fmt = schema.get("format")
        if fmt == "date-time" and not _DATE_TIME.match(value):
            _invalid(errors, path, value, "must be of type date-time")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema:
            lo = schema["minimum"]
            if schema.get("exclusiveMinimum") is True and value <= lo:
                _invalid(errors, path, value, f"should be greater than {lo}")
            elif value < lo:
                _invalid(errors, path, value, f"should be greater than or equal to {lo}")
        if "maximum" in schema:
            hi = schema["maximum"]
            if schema.get("exclusiveMaximum") is True and value >= hi:
                _invalid(errors, path, value, f"should be less than {hi}")
            elif value > hi:
                _invalid(errors, path, value, f"should be less than or equal to {hi}")
        mult = schema.get("multipleOf")
        if mult and (value / mult) != int(value / mult):
            _invalid(errors, path, value, f"should be a multiple of {mult}")


def _check_combinators(schema: dict[str, Any], value: Any, path: str, errors: list[str]) -> None:
    shown = path or "<root>"
    one_of = schema.get("oneOf")
    if one_of:
        matches = sum(1 for sub in one_of if not check(sub, value, path))
        if matches != 1:
            errors.append(f"{shown}: Invalid value: {_fmt(value)}: {shown} in body must validate one and only one "
                          f"schema (oneOf). Found {matches} valid alternatives")
    any_of = schema.get("anyOf")
    if any_of and not any(not check(sub, value, path) for sub in any_of):
        errors.append(f"{shown}: Invalid value: {_fmt(value)}: {shown} in body must validate at least one schema "
                      f"(anyOf)")
    for sub in schema.get("allOf") or ():
        errors.extend(check(sub, value, path))
    not_schema = schema.get("not")
    if isinstance(not_schema, dict) and not check(not_schema, value, path):
        errors.append(f"{shown}: Invalid value: {_fmt(value)}: {shown} in body must not validate the schema (not)")
