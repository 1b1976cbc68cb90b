"""Patch flavours the API server accepts: JSON merge, JSON (RFC 6902), strategic merge, server-side apply.

Server-side apply keeps, per manager, the set of field paths it applied (encoded in managedFields the
way the API server does, `f:`/`k:` keys), so a later apply can remove what the manager stopped applying.
"""

from __future__ import annotations

import copy
import json
from typing import Any

# A field path: map keys as str, keyed list items as ("k", '{"name":"x"}').
PathElem = str | tuple[str, str]
FieldPath = tuple[PathElem, ...]


class PatchError(ValueError):
    """The patch is well-formed JSON but cannot be applied (API server answers 422)."""


# ---------------------------------------------------------------- JSON merge patch (RFC 7386)

def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# ---------------------------------------------------------------- JSON patch (RFC 6902)

def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, *, for_add: bool) -> int:
    if token == "-" and for_add:
        return len(container)
    try:
        idx = int(token)
    except ValueError:
        raise PatchError(f"invalid array index {token!r}") from None
    limit = len(container) if for_add else len(container) - 1
    if idx < 0 or idx > limit:
        raise PatchError(f"array index {idx} out of bounds")
    return idx


def _parent(doc: Any, tokens: list[str]) -> Any:
    cur = doc
    for tok in tokens[:-1]:
        if isinstance(cur, dict):
            if tok not in cur:
                raise PatchError(f"path /{'/'.join(tokens)}: missing key {tok!r}")
            cur = cur[tok]
        elif isinstance(cur, list):
            cur = cur[_index(cur, tok, for_add=False)]
        else:
            raise PatchError(f"path /{'/'.join(tokens)}: cannot traverse a scalar")
    return cur


def _get(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path /{'/'.join(tokens)} does not exist")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, for_add=False)]
    raise PatchError(f"path /{'/'.join(tokens)}: cannot traverse a scalar")


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, for_add=True), value)
    else:
        raise PatchError("cannot add to a scalar")
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path /{'/'.join(tokens)} does not exist")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, for_add=False)]
    else:
        raise PatchError("cannot remove from a scalar")
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid operation {op!r}")
        kind = op["op"]
        tokens = _pointer(op["path"])
        if kind == "add":
            doc = _add(doc, tokens, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc = _remove(doc, tokens)
        elif kind == "replace":
            _get(doc, tokens)
            doc = _remove(doc, tokens) if tokens else doc
            doc = _add(doc, tokens, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            src = _pointer(op.get("from", ""))
            value = copy.deepcopy(_get(doc, src))
            if kind == "move":
                doc = _remove(doc, src)
            doc = _add(doc, tokens, value)
        elif kind == "test":
            if _get(doc, tokens) != op.get("value"):
                raise PatchError(f"test operation failed at {op['path']}")
        else:
            raise PatchError(f"unsupported operation {kind!r}")
    return doc


# ---------------------------------------------------------------- strategic merge patch

def list_key(field: str | None, items: list[Any]) -> str | None:
    """The merge key of a list, or None when it is atomic (replaced whole): from the schema of the
    kind being written (see listtypes), the first candidate key every item carries."""
    from .listtypes import current

    dicts = [i for i in items if isinstance(i, dict)]
    if field is None or not dicts or len(dicts) != len(items):
        return None
    return next((key for key in current().get(field, ()) if all(key in i for i in dicts)), None)


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def _smp_list(current: list[Any], patch: list[Any], field: str) -> list[Any]:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [_strip_directives(i) for i in patch if not (isinstance(i, dict) and i.get("$patch") == "replace")]
    if field == "finalizers":
        return list(current) + [i for i in patch if i not in current]
    key = list_key(field, [i for i in patch if not (isinstance(i, dict) and set(i) <= {"$patch"})])
    if key is None or not all(isinstance(c, dict) and key in c for c in current):
        return [_strip_directives(i) for i in patch]
    result = [copy.deepcopy(c) for c in current]
    for item in patch:
        idx = next((n for n, c in enumerate(result) if c.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                del result[idx]
        elif idx is None:
            result.append(_strip_directives(item))
        else:
            result[idx] = strategic_merge(result[idx], item)
    return result


def strategic_merge(target: Any, patch: Any, field: str | None = None) -> Any:
    if not isinstance(patch, dict):
        return _strip_directives(copy.deepcopy(patch))
    if patch.get("$patch") == "replace":
        return _strip_directives(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _smp_list(result[key], value, key)
        elif isinstance(value, dict):
            if value.get("$patch") == "delete":
                result.pop(key, None)
            else:
                result[key] = strategic_merge(result.get(key), value, key)
        else:
            result[key] = _strip_directives(copy.deepcopy(value))
    return result


# ---------------------------------------------------------------- server-side apply

def _item_elem(key: str, item: dict[str, Any]) -> tuple[str, str]:
    return ("k", json.dumps({key: item.get(key)}, sort_keys=True, separators=(",", ":")))


def field_paths(value: Any, prefix: FieldPath = (), field: str | None = None) -> set[FieldPath]:
    """Leaf paths (and keyed list items) of an applied configuration."""
    out: set[FieldPath] = set()
    if isinstance(value, dict):
        if not value and prefix:
            out.add(prefix)
        for k, v in value.items():
            out |= field_paths(v, prefix + (k,), k)
    elif isinstance(value, list) and (key := list_key(field, value)) is not None:
        for item in value:
            ip = prefix + (_item_elem(key, item),)
            out.add(ip)
            out |= field_paths(item, ip, None)
    elif prefix:
        out.add(prefix)
    return out


def apply_merge(current: Any, applied: Any, field: str | None = None) -> Any:
    if isinstance(current, dict) and isinstance(applied, dict):
        result = copy.deepcopy(current)
        for k, v in applied.items():
            result[k] = apply_merge(current[k], v, k) if k in current else copy.deepcopy(v)
        return result
    if isinstance(current, list) and isinstance(applied, list):
        key = list_key(field, applied)
        if key is not None and all(isinstance(c, dict) and key in c for c in current):
            merged = [copy.deepcopy(c) for c in current]
            for item in applied:
                idx = next((n for n, c in enumerate(merged) if c.get(key) == item.get(key)), None)
                if idx is None:
                    merged.append(copy.deepcopy(item))
                else:
                    merged[idx] = apply_merge(merged[idx], item)
            return merged
    return copy.deepcopy(applied)


def _locate(obj: Any, path: FieldPath) -> tuple[Any, PathElem] | None:
    """(container, element) holding the last element of path, or None when absent."""
    cur = obj
    for n, elem in enumerate(path):
        last = n == len(path) - 1
        if isinstance(elem, tuple):
            if not isinstance(cur, list):
                return None
            want = json.loads(elem[1])
            (k, v), = want.items()
            idx = next((i for i, c in enumerate(cur) if isinstance(c, dict) and c.get(k) == v), None)
            if idx is None:
                return None
            if last:
                return cur, elem
            cur = cur[idx]
        else:
            if not isinstance(cur, dict) or elem not in cur:
                return None
            if last:
                return cur, elem
            cur = cur[elem]
    return None


def value_at(obj: Any, path: FieldPath) -> tuple[bool, Any]:
    loc = _locate(obj, path)
    if loc is None:
        return False, None
    container, elem = loc
    if isinstance(elem, tuple):
        (k, v), = json.loads(elem[1]).items()
        return True, next(c for c in container if isinstance(c, dict) and c.get(k) == v)
    return True, container[elem]


def _delete(obj: Any, path: FieldPath) -> bool:
    loc = _locate(obj, path)
    if loc is None:
        return False
    container, elem = loc
    if isinstance(elem, tuple):
        (k, v), = json.loads(elem[1]).items()
        container[:] = [c for c in container if not (isinstance(c, dict) and c.get(k) == v)]
    else:
        del container[elem]
    return True


def remove_fields(obj: dict[str, Any], paths: set[FieldPath], still_owned: set[FieldPath]) -> None:
    """Delete paths no manager applies any more, then the maps and lists that removal left empty."""
    removable = {p for p in paths if p not in still_owned}
    for path in sorted(removable, key=len):
        # A removed keyed-list item takes its fields with it; deleting them first would lose its key.
        if any(path[:n] in removable for n in range(1, len(path))) or not _delete(obj, path):
            continue
        # Emptied parents vanish too, unless someone owns them or they are a top-level stanza.
        for depth in range(len(path) - 1, 1, -1):
            parent = path[:depth]
            if parent in still_owned or any(p[:depth] == parent for p in still_owned):
                break
            found, val = value_at(obj, parent)
            if found and val in ({}, []):
                _delete(obj, parent)
            else:
                break


def encode_fields(paths: set[FieldPath]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in paths:
        node = root
        for elem in path:
            name = f"k:{elem[1]}" if isinstance(elem, tuple) else f"f:{elem}"
            node = node.setdefault(name, {})
        if any(isinstance(e, tuple) for e in path[-1:]):
            node.setdefault(".", {})
    return root


def decode_fields(fields: Any, prefix: FieldPath = ()) -> set[FieldPath]:
    out: set[FieldPath] = set()
    if not isinstance(fields, dict):
        return out
    if not fields and prefix:
        out.add(prefix)
    for name, sub in fields.items():
        if name == ".":
            out.add(prefix)
        elif name.startswith("f:"):
            out |= decode_fields(sub, prefix + (name[2:],))
        elif name.startswith("k:"):
            out |= decode_fields(sub, prefix + (("k", name[2:]),))
    return out


def conflicts(current: dict[str, Any], applied_paths: set[FieldPath], applied: dict[str, Any],
              others: dict[str, set[FieldPath]]) -> list[tuple[str, str]]:
    """(manager, dotted path) pairs where another manager owns a field this apply would change."""
    found: list[tuple[str, str]] = []
    for manager, owned in others.items():
        for path in sorted(applied_paths & owned, key=str):
            if isinstance(path[-1], tuple):
                continue
            had, old = value_at(current, path)
            _, new = value_at(applied, path)
            if had and old != new:
                found.append((manager, "." + ".".join(e if isinstance(e, str) else f"[{e[1]}]" for e in path)))
    return found
