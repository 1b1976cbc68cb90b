"""CRD validation rules (`x-kubernetes-validations`) evaluated with a real CEL implementation.

The API server compiles each rule when the CRD is registered and evaluates it with `self` bound to
the value of the field that carries it (`oldSelf` on updates, for transition rules, which are
skipped on create), and only when that field is present. A failed rule answers 422 with its
`message`, at its field path (or `fieldPath` under it):
`spec.defaultResources: Invalid value: "object": <message>`.

CEL comes from the `common-expression-language` package (Rust's cel-interpreter). Kubernetes adds
its own libraries on top of standard CEL (`isURL`, `quantity`, ...); a rule this implementation
cannot compile fails CRD registration here with a message naming it, rather than being skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

RULES = "x-kubernetes-validations"


class CelUnsupported(ValueError):
    """A rule the simulator cannot compile (it names the rule and its field)."""


def _compile(rule: str) -> Any:
    import cel  # the compiled CEL implementation: imported on first use

    return cel.compile(rule)


def rules_of(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (field path, rule) in a schema, for checking rules when a CRD is registered."""
    for rule in schema.get(RULES) or []:
        yield path or "<root>", rule
    for key, sub in (schema.get("properties") or {}).items():
        if isinstance(sub, dict):
            yield from rules_of(sub, f"{path}.{key}" if path else key)
    items = schema.get("items")
    if isinstance(items, dict):
        yield from rules_of(items, f"{path}[*]")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        yield from rules_of(extra, f"{path}[*]")


def check_rules_compile(schema: dict[str, Any]) -> list[str]:
    """Errors for rules that do not compile or carry no rule (registration-time check)."""
    errors = []
    for path, rule in rules_of(schema):
        text = rule.get("rule")
        if not isinstance(text, str) or not text:
            errors.append(f"{path}: x-kubernetes-validations: Required value: rule is required")
            continue
        try:
            _compile(text)
        except Exception as exc:  # noqa: BLE001 - any compile failure is the rule's problem
            raise CelUnsupported(f"{path}: x-kubernetes-validations rule {text!r} cannot be compiled by the "
                                 f"simulated API server: {exc}") from None
    return errors


def _type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return json.dumps(value)


def _evaluate(rule: dict[str, Any], value: Any, old: Any, has_old: bool) -> bool | None:
    """True or False; None when the rule is a transition rule and there is no old value."""
    import cel

    text = str(rule["rule"])
    if "oldSelf" in text and not has_old:
        return None
    context: dict[str, Any] = {"self": value}
    if has_old:
        context["oldSelf"] = old
    try:
        result = cel.evaluate(text, context)
    except Exception as exc:  # noqa: BLE001 - a runtime error fails the rule, as in the API server
        raise _RuleError(f"{exc}") from None
    return bool(result)


class _RuleError(Exception):
    pass


def validate(schema: dict[str, Any], value: Any, old: Any = None, *, has_old: bool = False,
             path: str = "") -> list[str]:
    """Every failed rule under `schema` for `value` (and `old` on update), API-server formatted."""
    errors: list[str] = []
    if value is None:
        return errors
    for rule in schema.get(RULES) or []:
        try:
            passed = _evaluate(rule, value, old, has_old)
        except _RuleError as exc:
            errors.append(f"{path or '<root>'}: Invalid value: {json.dumps(_type_name(value))}: "
                          f"rule evaluation error: {exc}")
            continue
        if passed is False:
            where = path + str(rule.get("fieldPath") or "") if rule.get("fieldPath") else path
            message = rule.get("message") or f"failed rule: {rule['rule']}"
            errors.append(f"{where or '<root>'}: Invalid value: {json.dumps(_type_name(value))}: {message}")
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if isinstance(sub, dict) and key in value:
                old_sub = old.get(key) if has_old and isinstance(old, dict) else None
                errors += validate(sub, value[key], old_sub, has_old=has_old and isinstance(old, dict)
                                   and key in old, path=f"{path}.{key}" if path else key)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            errors += validate(schema["items"], item, path=f"{path}[{index}]")
    return errors
