"""Server-side printing: answers to `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.

kubectl asks for a Table on `kubectl get` and prints its columns. As the apiextensions-apiserver's
table convertor does, a custom resource's Table has a Name column then one column per
`additionalPrinterColumns` entry, each a simple JSONPath evaluated with missing keys allowed
(nil cell); `date` cells become a human-readable age and `string` cells print the value. Built-in
kinds get Name and Age here (the real server prints more columns for them).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from .resources import ResourceType

TABLE_MEDIA = "as=Table"
_NAME_COLUMN = {"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within "
                "a namespace.", "priority": 0}
_DEFAULT_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
_STEP = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*[\"']([^\"']*)[\"']\)\]")


def wants_table(accept: str | None) -> bool:
    return bool(accept) and TABLE_MEDIA in str(accept).replace(" ", "")


def _columns(rt: ResourceType) -> list[dict[str, Any]]:
    return list(rt.printer_columns) if rt.printer_columns else [_DEFAULT_AGE]


def evaluate(path: str, obj: Any) -> Any:
    """A simple JSONPath (`.a.b`, `[0]`, `[?(@.type=="Ready")]`) -> the first value, or None."""
    values = [obj]
    position = 0
    while position < len(path):
        step = _STEP.match(path, position)
        if step is None:
            return None
        position = step.end()
        key, index, filter_key, filter_value = step.groups()
        found: list[Any] = []
        for value in values:
            if key is not None and isinstance(value, dict) and key in value:
                found.append(value[key])
            elif index is not None and isinstance(value, list) and int(index) < len(value):
                found.append(value[int(index)])
            elif filter_key is not None and isinstance(value, list):
                found.extend(item for item in value
                             if isinstance(item, dict) and str(evaluate("." + filter_key, item)) == filter_value)
        values = found
        if not values:
            return None
    return values[0] if values else None


def human_age(timestamp: str, now: datetime | None = None) -> str:
    """metav1's ConvertToHumanReadableDateType: the age as `45s`, `5m30s`, `3h`, `2d4h`, `3y`."""
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    if seconds < -1:
        return "<invalid>"
    seconds = max(seconds, 0)
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if years < 8:
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{years}y"


def _cell(column: dict[str, Any], obj: dict[str, Any]) -> Any:
    value = evaluate(str(column.get("jsonPath", "")), obj)
    if value is None:
        return None
    kind = column.get("type")
    if kind == "date":
        return human_age(value) if isinstance(value, str) else None
    if kind == "string":
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if kind == "integer":
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    if kind == "number":
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    return None


def _partial(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata") or {}}


def to_table(rt: ResourceType, answer: dict[str, Any], include_object: str | None = None) -> dict[str, Any]:
    """A list (or one object) as answered without Table -> the meta.k8s.io/v1 Table kubectl prints."""
    columns = _columns(rt)
    items = answer.get("items") if "items" in answer else [answer]
    rows = []
    for obj in items or []:
        row: dict[str, Any] = {"cells": [(obj.get("metadata") or {}).get("name"),
                                         *(_cell(column, obj) for column in columns)]}
        if include_object != "None":
            row["object"] = obj if include_object == "Object" else _partial(rt, obj)
        rows.append(row)
    meta = answer.get("metadata") or {}
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {key: meta[key] for key in ("resourceVersion", "continue", "remainingItemCount") if key in meta},
        "columnDefinitions": [_NAME_COLUMN, *({"name": c["name"], "type": c["type"], "format": c.get("format", ""),
                                               "description": c.get("description")
                                               or f"Custom resource definition column (in JSONPath format): "
                                                  f"{c.get('jsonPath')}",
                                               "priority": int(c.get("priority") or 0)} for c in columns)],
        "rows": rows,
    }
