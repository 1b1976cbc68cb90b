"""Which lists merge by key in server-side apply and strategic merge patch, from the real schemas.

Built-in kinds: the official OpenAPI definitions `kubernetes-validate` ships
(`x-kubernetes-list-type: map` with `x-kubernetes-list-map-keys`, `x-kubernetes-patch-merge-key`),
e.g. a container's volumeMounts are keyed by mountPath, not name. Custom resources: lists are
atomic unless their CRD schema declares `x-kubernetes-list-type: map`.

Simplification (documented in docs/development.md): keys are looked up by the list's field name,
not its full path; where built-in types use one field name with different keys (Container.ports by
containerPort, ServiceSpec.ports by port) the first key every item carries is used, and only the
first of several map keys (containerPort of [containerPort, protocol]) identifies an item.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

SCHEMA_VERSION = "1.31.0"  # the Kubernetes version the simulated server reports

ListKeys = Mapping[str, tuple[str, ...]]  # list field name -> candidate keys, in order
_current: contextvars.ContextVar[ListKeys | None] = contextvars.ContextVar("sim_list_keys", default=None)


def _keys_of(prop: Mapping[str, Any]) -> tuple[str, ...]:
    if prop.get("x-kubernetes-list-type") in ("atomic", "set"):
        return ()
    keys = list(prop.get("x-kubernetes-list-map-keys") or [])
    merge_key = prop.get("x-kubernetes-patch-merge-key")
    if merge_key and merge_key not in keys:
        keys.insert(0, merge_key)
    return tuple(keys[:1]) if keys else ()


@functools.cache
def builtin_list_keys() -> ListKeys:
    import kubernetes_validate  # the official schemas (optional extra `validate`, installed by make install)

    path = (Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" /
            f"v{SCHEMA_VERSION}-local-strict" / "_definitions.json")
    definitions = json.loads(path.read_text())["$defs"]
    table: dict[str, list[str]] = {}
    for definition in definitions.values():
        for name, prop in (definition.get("properties") or {}).items():
            for key in _keys_of(prop):
                if key not in table.setdefault(name, []):
                    table[name].append(key)
    return {name: tuple(keys) for name, keys in table.items()}


def crd_list_keys(schema: Mapping[str, Any] | None) -> ListKeys:
    """Keyed lists a CRD's openAPIV3Schema declares (every other list is atomic)."""
    table: dict[str, list[str]] = {}

    def walk(node: Any) -> None:
        if not isinstance(node, Mapping):
            return
        for name, prop in (node.get("properties") or {}).items():
            if isinstance(prop, Mapping):
                if prop.get("x-kubernetes-list-type") == "map":
                    for key in prop.get("x-kubernetes-list-map-keys") or []:
                        if key not in table.setdefault(name, []):
                            table[name].append(key)
                walk(prop)
        walk(node.get("items"))
        walk(node.get("additionalProperties"))

    walk(schema)
    return {name: tuple(keys[:1]) for name, keys in table.items()}


@contextlib.contextmanager
def using(keys: ListKeys) -> Iterator[None]:
    """Merge lists by `keys` within this block (the kind being patched or applied)."""
    token = _current.set(keys)
    try:
        yield
    finally:
        _current.reset(token)


def current() -> ListKeys:
    found = _current.get()
    return found if found is not None else builtin_list_keys()
