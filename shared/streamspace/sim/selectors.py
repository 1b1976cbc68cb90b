"""Label and field selectors in the API server's query-string syntax."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Matcher = Callable[[dict[str, Any]], bool]


class SelectorError(ValueError):
    pass


def _split_top_level(text: str) -> list[str]:
    # Commas inside "in (a,b)" belong to the set, not to the requirement list.
    parts: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


_SET_RE = re.compile(r"^([^\s!=()]+)\s+(in|notin)\s*\(([^)]*)\)$")
_CMP_RE = re.compile(r"^([^\s!=()]+)\s*(==|=|!=)\s*([^\s!=()]*)$")
_KEY_RE = re.compile(r"^(!?)\s*([^\s!=()]+)$")


def _requirement(op: str, key: str, values: frozenset[str]) -> Callable[[dict[str, Any]], bool]:
    def pred(labels: dict[str, Any]) -> bool:
        if op in ("in", "="):
            return key in labels and labels[key] in values
        if op in ("notin", "!="):
            return key not in labels or labels[key] not in values
        if op == "exists":
            return key in labels
        return key not in labels

    return pred


def parse_label_selector(text: str | None) -> Matcher:
    if not text:
        return lambda _labels: True
    preds: list[Matcher] = []
    for req in _split_top_level(text):
        m = _SET_RE.match(req)
        if m:
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            preds.append(_requirement(m.group(2), m.group(1), values))
            continue
        m = _CMP_RE.match(req)
        if m:
            preds.append(_requirement("!=" if m.group(2) == "!=" else "=", m.group(1), frozenset([m.group(3)])))
            continue
        m = _KEY_RE.match(req)
        if m:
            preds.append(_requirement("absent" if m.group(1) else "exists", m.group(2), frozenset()))
            continue
        raise SelectorError(f"unable to parse requirement: {req!r}")
    return lambda labels: all(p(labels) for p in preds)


def _field_value(obj: dict[str, Any], dotted: str) -> str:
    cur: Any = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return ""
        cur = cur[part]
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return "" if cur is None else str(cur)


def parse_field_selector(text: str | None) -> Matcher:
    if not text:
        return lambda _obj: True
    preds: list[Matcher] = []
    for req in _split_top_level(text):
        m = re.match(r"^([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)$", req)
        if not m:
            raise SelectorError(f"invalid field selector: {req!r}")
        preds.append(_field_requirement(m.group(1), m.group(2) == "!=", m.group(3).strip()))
    return lambda obj: all(p(obj) for p in preds)


def _field_requirement(field: str, negate: bool, value: str) -> Matcher:
    def pred(obj: dict[str, Any]) -> bool:
        return (_field_value(obj, field) == value) != negate

    return pred
