"""Verb semantics of the API server, independent of HTTP: create, get, list, update, patch, delete.

Every write goes through `_write`, which owns the bookkeeping a real API server does: status subresource
isolation, validation and defaulting, generation, managedFields, resourceVersion preconditions, no-op
detection (an unchanged object keeps its resourceVersion and emits no watch event), finalizers.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from . import builtin, cel, listtypes
from . import patch as patchlib
from .errors import ApiError, already_exists, bad_request, conflict, invalid, not_found
from .resources import CRD_GROUP, CrdError, Registry, ResourceType
from .schema import validate_and_default
from .selectors import SelectorError, parse_field_selector, parse_label_selector
from .store import Store, TooOld
from .structural import structural_errors

NS_KEY = ("", "namespaces")
POD_KEY = ("", "pods")
FOREGROUND_FINALIZER = "foregroundDeletion"
ORPHAN_FINALIZER = "orphan"
CRD_KEY = (CRD_GROUP, "customresourcedefinitions")
_META_MANAGED = ("labels", "annotations", "finalizers", "ownerReferences")
_GEN_CHARS = "bcdfghjklmnpqrstvwxz2456789"

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
APPLY_CBOR = "application/apply-patch+cbor"


def now(after_seconds: int = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=after_seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pod_grace_period(pod: dict[str, Any], requested: Any) -> int:
    """pkg/registry/core/pod/strategy.go CheckGracefulDelete: the requested period, else the pod's
    terminationGracePeriodSeconds; 0 for a pod no node runs (unscheduled) or one that has finished."""
    spec = pod.get("spec") or {}
    if not spec.get("nodeName") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return 0
    period = requested if requested is not None else spec.get("terminationGracePeriodSeconds", 30)
    try:
        return max(0, int(period))
    except (TypeError, ValueError):
        raise bad_request("gracePeriodSeconds must be an integer") from None


def _deletion_complete(rt: ResourceType, obj: dict[str, Any]) -> bool:
    meta = obj["metadata"]
    if not meta.get("deletionTimestamp") or meta.get("finalizers"):
        return False
    if int(meta.get("deletionGracePeriodSeconds") or 0):
        return False
    # A namespace also waits for its own finalizers (spec.finalizers: the namespace controller's "kubernetes").
    return rt.store_key != NS_KEY or not (obj.get("spec") or {}).get("finalizers")


def random_suffix(n: int = 5) -> str:
    return "".join(random.choice(_GEN_CHARS) for _ in range(n))


def _managed_view(rt: ResourceType, obj: dict[str, Any], subresource: str | None) -> dict[str, Any]:
    """The part of an object whose field ownership managedFields tracks for this endpoint."""
    if subresource == "status":
        return {"status": obj["status"]} if "status" in obj else {}
    view = {k: v for k, v in obj.items()
            if k not in ("apiVersion", "kind", "metadata") and not (k == "status" and rt.has_status)}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k in _META_MANAGED}
    if meta:
        view["metadata"] = meta
    return view


def _check_uid_unchanged(rt: ResourceType, old: dict[str, Any], uid: Any, subresource: str | None) -> None:
    """A PATCH (merge, JSON, strategic or apply) carries no preconditions (the patch handler passes
    rest.DefaultUpdatedObjectInfo(nil, ...)): a metadata.uid it sets is part of the patched object.
    A custom resource's status strategy copies the stored object over it first (PrepareForUpdate),
    so it is dropped there; everywhere else ValidateObjectMetaUpdate refuses it as immutable."""
    if not uid or uid == old["metadata"].get("uid") or (subresource == "status" and rt.is_crd):
        return
    raise invalid(rt.kind, old["metadata"]["name"], rt.group,
                  [f'metadata.uid: Invalid value: "{uid}": field is immutable'])


def _generation_view(obj: dict[str, Any]) -> Any:
    if "spec" in obj:
        return obj["spec"]
    return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}


def _pruned(before: Any, after: Any, path: str = "") -> list[str]:
    """Dotted paths present (and not null) in `before` but gone from `after`."""
    out: list[str] = []
    if isinstance(before, dict) and isinstance(after, dict):
        for k, v in before.items():
            sub = f"{path}.{k}" if path else k
            if k not in after:
                if v is not None:
                    out.append(sub)
            else:
                out += _pruned(v, after[k], sub)
    elif isinstance(before, list) and isinstance(after, list):
        for i, (b, a) in enumerate(zip(before, after, strict=False)):
            out += _pruned(b, a, f"{path}[{i}]")
    return out


CONTINUE_EXPIRED = ("The provided continue parameter is too old to display a consistent list result. You can start a "
                    "new list without the continue parameter, or use the continue token in this response to retrieve "
                    "the remainder of the results. Continuing with the provided token results in an inconsistent "
                    "list - objects that were created, modified, or deleted between the time the first chunk was "
                    "returned and now may show up in the list.")


def _object_key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _encode_continue(rv: int, after: str) -> str:
    # As storage.EncodeContinue: {"v": "meta.k8s.io/v1", "rv": ..., "start": <key to start from>}.
    token = {"v": "meta.k8s.io/v1", "rv": rv, "start": after + "\x00"}
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode()


def _decode_continue(token: str) -> tuple[int, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data.get("v") != "meta.k8s.io/v1":
            raise ValueError("version")
        rv, start = int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise bad_request("continue key is not valid: the continue token could not be decoded") from None
    if rv == 0 or rv < -1 or not start.endswith("\x00"):
        raise bad_request("continue key is not valid: incorrect encoded start resourceVersion (version "
                          "meta.k8s.io/v1)")
    return rv, start[:-1]


def _entry_key(entry: dict[str, Any]) -> tuple[str, str, str]:
    return (entry.get("manager", ""), entry.get("operation", ""), entry.get("subresource", ""))


class Api:
    def __init__(self, registry: Registry, store: Store) -> None:
        self.registry = registry
        self.store = store
        # Mutating admission plugins the cluster registers (the DefaultStorageClass plugin: volumes.py).
        self.admission: list[Callable[[ResourceType, dict[str, Any]], None]] = []

    # ------------------------------------------------------------ helpers

    def out(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        result = copy.deepcopy(obj)
        result["apiVersion"] = rt.api_version
        result["kind"] = rt.kind
        return result

    def _require_namespace(self, rt: ResourceType, ns: str) -> None:
        if rt.namespaced and self.store.get(NS_KEY, "", ns) is None:
            raise not_found("namespaces", ns, "", "namespaces")

    def _existing(self, rt: ResourceType, ns: str, name: str) -> dict[str, Any]:
        obj = self.store.get(rt.store_key, ns if rt.namespaced else "", name)
        if obj is None:
            raise not_found(rt.qualified, name, rt.group, rt.plural)
        return obj

    def _validate(self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None,
                  strict: bool = False) -> None:
        meta = obj.get("metadata") or {}
        errors = builtin.metadata_errors(rt, meta, check_name=old is None)
        if rt.is_crd and rt.schema:
            before = copy.deepcopy(obj) if strict else None
            errors += validate_and_default(rt.schema, obj)
            if not errors:  # as in the API server, rules run on a value that passed the schema
                errors += cel.validate(rt.schema, obj, old, has_old=old is not None)
            unknown = _pruned(before, obj) if before is not None else []
            if unknown:
                # kubectl sends fieldValidation=Strict; the API server then refuses instead of pruning.
                listed = ", ".join(f'unknown field "{u}"' for u in unknown)
                raise bad_request(f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                                  f"strict decoding error: {listed}")
        else:
            builtin.apply_defaults(rt, obj, old)
            errors += builtin.validate(rt, obj, old)
        if rt.store_key == CRD_KEY:
            try:
                from .resources import types_from_crd

                types_from_crd(obj)
                for index, served in enumerate((obj.get("spec") or {}).get("versions") or []):
                    schema = ((served.get("schema") or {}).get("openAPIV3Schema")) or {}
                    errors += structural_errors(schema, f"spec.versions[{index}].schema.openAPIV3Schema")
                    errors += cel.check_rules_compile(schema)
            except (CrdError, cel.CelUnsupported) as exc:
                errors.append(str(exc))
        if errors:
            raise invalid(rt.kind, str(meta.get("name", "")), rt.group, errors)

    @staticmethod
    def _body_meta(body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format")
        meta = body.get("metadata")
        if meta is None:
            meta = body["metadata"] = {}
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        return meta

    def _check_kind(self, rt: ResourceType, body: dict[str, Any]) -> None:
        kind = body.get("kind")
        api_version = body.get("apiVersion")
        if kind and kind != rt.kind:
            raise bad_request(f"the API version in the data ({api_version}) does not match the expected API version "
                              f"({rt.api_version})" if api_version and api_version != rt.api_version else
                              f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
        if api_version and api_version != rt.api_version:
            raise bad_request(f"the API version in the data ({api_version}) does not match the expected API version "
                              f"({rt.api_version})")

    def _update_managed_fields(
        self, rt: ResourceType, old: dict[str, Any] | None, new: dict[str, Any], manager: str | None,
        subresource: str | None, applied_paths: set[patchlib.FieldPath] | None,
    ) -> None:
        """Record ownership: an apply owns exactly what it applied, an update takes over what it changed."""
        entries = copy.deepcopy((old or {}).get("metadata", {}).get("managedFields") or [])
        sub = subresource or ""
        old_view = _managed_view(rt, old, subresource) if old else {}
        new_view = _managed_view(rt, new, subresource)
        changed = {p for p in patchlib.field_paths(new_view)
                   if patchlib.value_at(old_view, p) != patchlib.value_at(new_view, p)}
        # Whoever changes a field takes it over; equal values stay shared, as with the real field manager.
        taken = changed
        if applied_paths is not None:
            op, owned = "Apply", applied_paths
        else:
            op, owned = "Update", changed
            if not owned and old is not None:
                new["metadata"]["managedFields"] = entries
                return
        if not manager:
            new["metadata"]["managedFields"] = entries
            return
        result: list[dict[str, Any]] = []
        mine: dict[str, Any] | None = None
        for entry in entries:
            if _entry_key(entry) == (manager, op, sub):
                mine = entry
                continue
            if entry.get("subresource", "") == sub or entry.get("subresource", "") == "":
                fields = patchlib.decode_fields(entry.get("fieldsV1")) - taken
                if not fields:
                    continue
                entry["fieldsV1"] = patchlib.encode_fields(fields)
            result.append(entry)
        if op == "Update" and mine is not None:
            owned = owned | patchlib.decode_fields(mine.get("fieldsV1"))
        encoded = patchlib.encode_fields(owned)
        if mine is not None and mine.get("fieldsV1") == encoded and mine.get("apiVersion") == rt.api_version:
            entry = mine
        else:
            entry = {"manager": manager, "operation": op, "apiVersion": rt.api_version, "time": now(),
                     "fieldsType": "FieldsV1", "fieldsV1": encoded}
            if sub:
                entry["subresource"] = sub
        if owned:
            result.append(entry)
        new["metadata"]["managedFields"] = result

    # ------------------------------------------------------------ create

    def create(self, rt: ResourceType, ns: str, body: Any, *, manager: str | None = None,
               dry_run: bool = False, strict: bool = False) -> dict[str, Any]:
        with self.store.txn(), listtypes.using(self.list_keys(rt)):
            return self._create(rt, ns, body, manager=manager, dry_run=dry_run, applied_paths=None, strict=strict)

    def _create(self, rt: ResourceType, ns: str, body: Any, *, manager: str | None, dry_run: bool,
                applied_paths: set[patchlib.FieldPath] | None, strict: bool = False) -> dict[str, Any]:
        meta = self._body_meta(body)
        self._check_kind(rt, body)
        obj = copy.deepcopy(body)
        meta = obj["metadata"]
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise bad_request("the namespace of the provided object does not match the namespace sent on the "
                                  "request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + random_suffix()
            else:
                raise invalid(rt.kind, "", rt.group, ["metadata.name: Required value: name or generateName is "
                                                      "required"])
        name = meta["name"]
        self._require_namespace(rt, ns)
        namespace = self.store.get(NS_KEY, "", ns) if rt.namespaced else None
        if namespace is not None and namespace["metadata"].get("deletionTimestamp"):
            # The NamespaceLifecycle admission plugin (plugin/pkg/admission/namespace/lifecycle).
            why = f"unable to create new content in namespace {ns} because it is being terminated"
            raise ApiError(403, "Forbidden", f'{rt.qualified} "{name}" is forbidden: {why}',
                           {"name": name, **({"group": rt.group} if rt.group else {}), "kind": rt.plural,
                            "causes": [{"reason": "NamespaceTerminating", "message": why,
                                        "field": "metadata.namespace"}]})
        if self.store.get(rt.store_key, ns if rt.namespaced else "", name) is not None:
            raise already_exists(rt.qualified, name, rt.group, rt.plural)
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        for k in ("resourceVersion", "uid", "creationTimestamp", "deletionTimestamp", "generation", "selfLink",
                  "managedFields"):
            meta.pop(k, None)
        if rt.has_status:
            builtin.initial_status(rt, obj)
        for admit in self.admission:
            admit(rt, obj)
        self._validate(rt, obj, None, strict)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        if rt.has_generation:
            meta["generation"] = 1
        self._update_managed_fields(rt, None, obj, manager, None, applied_paths)
        if dry_run:
            return self.out(rt, obj)
        if rt.store_key == CRD_KEY:
            self._register_crd(obj)
        stored = self.store.put(rt.store_key, obj, "ADDED")
        return self.out(rt, stored)

    def _register_crd(self, obj: dict[str, Any]) -> None:
        types = self.registry.register_crd(obj)
        names = (obj.get("spec") or {}).get("names") or {}
        accepted = {k: v for k, v in names.items()}
        accepted.setdefault("singular", types[0].singular)
        accepted.setdefault("listKind", f"{types[0].kind}List")
        obj["status"] = {
            "acceptedNames": accepted,
            "storedVersions": [v["name"] for v in obj["spec"]["versions"] if v.get("storage")],
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": now()},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": now()},
            ],
        }

    # ------------------------------------------------------------ read

    def get(self, rt: ResourceType, ns: str, name: str) -> dict[str, Any]:
        with self.store.txn():
            return self.out(rt, self._existing(rt, ns, name))

    def list(self, rt: ResourceType, ns: str | None, *, label_selector: str | None = None,
             field_selector: str | None = None, limit: int | None = None,
             continue_token: str | None = None) -> dict[str, Any]:
        """A list, paged like the API server's etcd3 store (k8s.io/apiserver pkg/storage/etcd3/store.go,
        pkg/storage/continue.go): the continue token carries the first page's resourceVersion and the key
        to resume after; later pages are served from the snapshot at that resourceVersion, and once the
        history was compacted past it the token is expired (410, reason Expired) and the error carries a
        fresh token for an inconsistent remainder."""
        try:
            by_label = parse_label_selector(label_selector)
            by_field = parse_field_selector(field_selector)
        except SelectorError as exc:
            raise bad_request(str(exc)) from None
        scope = ns if rt.namespaced else None
        start = ""
        with self.store.txn():
            rv = self.store.current_rv
            if not continue_token:
                objects = self.store.items(rt.store_key, scope)
            else:
                token_rv, start = _decode_continue(continue_token)
                if token_rv == -1:  # the token a 410 hands out: the remainder as it is now
                    objects = self.store.items(rt.store_key, scope)
                elif token_rv > rv:
                    raise bad_request("continue key is not valid: incorrect encoded start resourceVersion")
                else:
                    rv = token_rv
                    try:
                        objects = self.store.snapshot(rt.store_key, scope, rv)
                    except TooOld:
                        expired = ApiError(410, "Expired", CONTINUE_EXPIRED)
                        expired.list_meta = {"continue": _encode_continue(-1, start)}
                        raise expired from None
            # In the order of the etcd keys (<namespace>/<name>), which the continue key points into.
            items = [self.out(rt, o) for o in sorted(objects, key=_object_key)
                     if _object_key(o) > start
                     and by_label((o.get("metadata") or {}).get("labels") or {}) and by_field(o)]
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if limit and limit > 0 and len(items) > limit:
            meta["continue"] = _encode_continue(rv, _object_key(items[limit - 1]))
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": meta, "items": items}

    # ------------------------------------------------------------ update / patch

    def replace(self, rt: ResourceType, ns: str, name: str, body: Any, *, subresource: str | None = None,
                manager: str | None = None, dry_run: bool = False, strict: bool = False) -> dict[str, Any]:
        meta = self._body_meta(body)
        self._check_kind(rt, body)
        if meta.get("name") and meta["name"] != name:
            raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        with self.store.txn(), listtypes.using(self.list_keys(rt)):
            old = self._existing(rt, ns, name)
            if meta.get("uid") and meta["uid"] != old["metadata"].get("uid"):
                # A PUT's metadata.uid is a storage precondition (rest.defaultUpdatedObjectInfo.Preconditions,
                # checked by GuaranteedUpdate before anything else), on /status too.
                raise conflict(rt.qualified, name, rt.group, rt.plural,
                               f"Precondition failed: UID in precondition: {meta['uid']}, UID in object meta: "
                               f"{old['metadata'].get('uid')}")
            rv = meta.get("resourceVersion")
            if not rv and rt.is_crd:
                raise invalid(rt.kind, name, rt.group,
                              ["metadata.resourceVersion: Invalid value: 0: must be specified for an update"])
            return self._write(rt, old, copy.deepcopy(body), subresource=subresource, manager=manager,
                               precondition_rv=rv, dry_run=dry_run, strict=strict)

    def patch(self, rt: ResourceType, ns: str, name: str, content_type: str, body: Any, *,
              subresource: str | None = None, manager: str | None = None, force: bool = False,
              dry_run: bool = False, strict: bool = False) -> tuple[int, dict[str, Any]]:
        with listtypes.using(self.list_keys(rt)):
            return self._patch(rt, ns, name, content_type, body, subresource=subresource, manager=manager,
                               force=force, dry_run=dry_run, strict=strict)

    @staticmethod
    def list_keys(rt: ResourceType) -> listtypes.ListKeys:
        """How lists of this kind merge: its CRD schema for custom resources, else the official schemas."""
        return listtypes.crd_list_keys(rt.schema) if rt.is_crd else listtypes.builtin_list_keys()

    def _patch(self, rt: ResourceType, ns: str, name: str, content_type: str, body: Any, *,
               subresource: str | None, manager: str | None, force: bool, dry_run: bool,
               strict: bool) -> tuple[int, dict[str, Any]]:
        if content_type in (APPLY, APPLY_CBOR):
            return self._apply(rt, ns, name, body, subresource=subresource, manager=manager, force=force,
                               dry_run=dry_run, strict=strict)
        if content_type == STRATEGIC and rt.is_crd:
            raise ApiError(415, "UnsupportedMediaType",
                           f'the body of the request was in an unknown format - accepted media types include: '
                           f'{JSON_PATCH}, {MERGE}, {APPLY}')
        with self.store.txn():
            old = self._existing(rt, ns, name)
            current = self.out(rt, old)
            try:
                if content_type == JSON_PATCH:
                    new = patchlib.json_patch(current, body)
                elif content_type == MERGE:
                    if not isinstance(body, dict):
                        raise bad_request("a merge patch must be a JSON object")
                    new = patchlib.merge_patch(current, body)
                elif content_type == STRATEGIC:
                    if not isinstance(body, dict):
                        raise bad_request("a strategic merge patch must be a JSON object")
                    new = patchlib.strategic_merge(current, body)
                else:
                    raise ApiError(415, "UnsupportedMediaType", f"the media type {content_type!r} is not supported "
                                   "for PATCH")
            except patchlib.PatchError as exc:
                raise ApiError(422, "Invalid", str(exc)) from None
            if not isinstance(new, dict):
                raise ApiError(422, "Invalid", "the patch did not produce an object")
            new_meta = new.setdefault("metadata", {})
            rv = new_meta.get("resourceVersion")
            precondition = rv if rv != old["metadata"].get("resourceVersion") else None
            if content_type != JSON_PATCH and isinstance(body, dict):
                # Only a resourceVersion the patch itself carries is a precondition.
                precondition = (body.get("metadata") or {}).get("resourceVersion")
            new_meta["name"] = name
            _check_uid_unchanged(rt, old, new_meta.get("uid"), subresource)
            return 200, self._write(rt, old, new, subresource=subresource, manager=manager,
                                    precondition_rv=precondition, dry_run=dry_run, strict=strict)

    def _apply(self, rt: ResourceType, ns: str, name: str, body: Any, *, subresource: str | None,
               manager: str | None, force: bool, dry_run: bool, strict: bool = False) -> tuple[int, dict[str, Any]]:
        if not manager:
            raise bad_request("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required "
                              "for apply patch")
        meta = self._body_meta(body)
        if not body.get("apiVersion") or not body.get("kind"):
            raise bad_request("apiVersion and kind must be set in the applied configuration")
        self._check_kind(rt, body)
        if meta.get("name") and meta["name"] != name:
            raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        applied = copy.deepcopy(body)
        applied["metadata"]["name"] = name
        view = _managed_view(rt, applied, subresource)
        applied_paths = patchlib.field_paths(view)
        with self.store.txn():
            old = self.store.get(rt.store_key, ns if rt.namespaced else "", name)
            if old is None:
                if subresource:
                    raise not_found(rt.qualified, name, rt.group, rt.plural)
                created = self._create(rt, ns, applied, manager=manager, dry_run=dry_run,
                                       applied_paths=applied_paths, strict=strict)
                return 201, created
            _check_uid_unchanged(rt, old, meta.get("uid"), subresource)
            sub = subresource or ""
            mine: set[patchlib.FieldPath] = set()
            others: dict[str, set[patchlib.FieldPath]] = {}
            for entry in (old["metadata"].get("managedFields") or []):
                if entry.get("subresource", "") != sub:
                    continue
                fields = patchlib.decode_fields(entry.get("fieldsV1"))
                if entry.get("manager") == manager and entry.get("operation") == "Apply":
                    mine = fields
                else:
                    others.setdefault(entry.get("manager", ""), set()).update(fields)
            current = self.out(rt, old)
            if not force:
                found = patchlib.conflicts(_managed_view(rt, current, subresource), applied_paths, view, others)
                if found:
                    msgs = [f'conflict with "{m}": {p}' for m, p in found]
                    err = conflict(rt.qualified, name, rt.group, rt.plural, "")
                    err.message = f"Apply failed with {len(found)} conflict{'s' if len(found) > 1 else ''}: " + \
                        "; ".join(msgs)
                    if err.details is None:
                        raise RuntimeError("invariant broken: err.details is None")
                    err.details["causes"] = [{"reason": "FieldManagerConflict", "message": f'conflict with "{m}"',
                                              "field": p} for m, p in found]
                    raise err
            merged_view = patchlib.apply_merge(_managed_view(rt, current, subresource), view)
            still_owned = applied_paths | set().union(*others.values()) if others else set(applied_paths)
            patchlib.remove_fields(merged_view, mine - applied_paths, still_owned)
            new = copy.deepcopy(current)
            for k in list(new):
                if k in ("apiVersion", "kind", "metadata"):
                    continue
                if subresource == "status" and k != "status":
                    continue
                if subresource != "status" and k == "status" and rt.has_status:
                    continue
                if k not in merged_view:
                    del new[k]
            for k, v in merged_view.items():
                if k == "metadata":
                    continue
                new[k] = v
            if subresource != "status":
                merged_meta = merged_view.get("metadata") or {}
                for k in _META_MANAGED:
                    if k in merged_meta:
                        new["metadata"][k] = merged_meta[k]
                    else:
                        new["metadata"].pop(k, None)
            precondition = meta.get("resourceVersion")
            return 200, self._write(rt, old, new, subresource=subresource, manager=manager,
                                    precondition_rv=precondition, dry_run=dry_run, applied_paths=applied_paths,
                                    strict=strict)

    def _write(self, rt: ResourceType, old: dict[str, Any], new: dict[str, Any], *, subresource: str | None,
               manager: str | None, precondition_rv: str | None, dry_run: bool,
               applied_paths: set[patchlib.FieldPath] | None = None, strict: bool = False) -> dict[str, Any]:
        """Commit an update (caller holds the store transaction)."""
        name = old["metadata"]["name"]
        if precondition_rv and str(precondition_rv) != old["metadata"].get("resourceVersion"):
            raise conflict(rt.qualified, name, rt.group, rt.plural,
                           "the object has been modified; please apply your changes to the latest version and try "
                           "again")
        if not isinstance(new.get("metadata"), dict):
            new["metadata"] = {}
        if subresource == "status":
            status = new.get("status")
            new = copy.deepcopy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif rt.has_status:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        new["apiVersion"] = rt.api_version
        new["kind"] = rt.kind
        meta = new["metadata"]
        old_meta = old["metadata"]
        for k in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "generation"):
            if k in old_meta:
                meta[k] = old_meta[k]
            else:
                meta.pop(k, None)
        if not meta.get("managedFields"):
            meta["managedFields"] = copy.deepcopy(old_meta.get("managedFields") or [])
        meta["resourceVersion"] = old_meta.get("resourceVersion")
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise invalid(rt.kind, name, rt.group, ["metadata.finalizers: Forbidden: no new finalizers can be "
                                                        "added if the object is being deleted"])
        self._validate(rt, new, old, strict)
        if rt.has_generation and _generation_view(new) != _generation_view(old):
            meta["generation"] = int(old_meta.get("generation") or 1) + 1
        self._update_managed_fields(rt, old, new, manager, subresource, applied_paths)
        if not meta.get("managedFields"):
            meta.pop("managedFields", None)
        comparable_old = self.out(rt, old)
        if new == comparable_old:
            return comparable_old
        if dry_run:
            return self.out(rt, new)
        if rt.store_key == CRD_KEY:
            self._register_crd(new)
        if _deletion_complete(rt, new):
            # The last finalizer is gone (store.go shouldDeleteDuringUpdate: and no grace period left).
            return self.out(rt, self._remove(rt.store_key, self.store.put(rt.store_key, new, "MODIFIED")))
        return self.out(rt, self.store.put(rt.store_key, new, "MODIFIED"))

    # ------------------------------------------------------------ binding

    def bind(self, ns: str, name: str, node: str) -> dict[str, Any]:
        """pods/binding: set spec.nodeName and PodScheduled=True, as the registry's binding REST does
        (pkg/registry/core/pod/storage/storage.go setPodHostAndAnnotations); a bound pod answers 409."""
        rt = self.registry.get("", "v1", "pods")
        if rt is None:
            raise RuntimeError("invariant broken: rt is None")
        with self.store.txn():
            pod = self._existing(rt, ns, name)
            if pod["metadata"].get("deletionTimestamp"):
                raise conflict(rt.qualified, name, rt.group, rt.plural,
                               f"pod {name} is being deleted, cannot be assigned to a host")
            if (pod.get("spec") or {}).get("nodeName"):
                raise conflict(rt.qualified, name, rt.group, rt.plural,
                               f'pod {name} is already assigned to node "{pod["spec"]["nodeName"]}"')
            bound = copy.deepcopy(pod)
            bound["spec"]["nodeName"] = node
            status = bound.setdefault("status", {})
            others = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            status["conditions"] = [{"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                                     "lastTransitionTime": now()}, *others]
            return self.out(rt, self.store.put(rt.store_key, bound, "MODIFIED"))

    # ------------------------------------------------------------ delete

    def delete(self, rt: ResourceType, ns: str, name: str, options: dict[str, Any] | None = None,
               propagation: str | None = None, dry_run: bool = False) -> dict[str, Any]:
        """DELETE as the API server's generic registry does it (k8s.io/apiserver pkg/registry/generic/registry/
        store.go): an object with finalizers, a pod with a grace period (pkg/registry/core/pod/strategy.go
        CheckGracefulDelete), or a namespace (pkg/registry/core/namespace/storage) only gets a
        deletionTimestamp; Foreground and Orphan propagation add the `foregroundDeletion` / `orphan`
        finalizer for the garbage collector (gc.py); otherwise the object is removed at once and the
        collector deletes its dependents afterwards, asynchronously."""
        options = options or {}
        policy = propagation or options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        if policy not in (None, "Background", "Foreground", "Orphan"):
            raise bad_request(f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: '
                              f'"{policy}": supported values: "Foreground", "Background", "Orphan"')
        with self.store.txn():
            obj = self._existing(rt, ns, name)
            pre = options.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != obj["metadata"].get("uid"):
                raise conflict(rt.qualified, name, rt.group, rt.plural,
                               f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                               f"{obj['metadata'].get('uid')}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != obj["metadata"].get("resourceVersion"):
                raise conflict(rt.qualified, name, rt.group, rt.plural,
                               "the object has been modified; please apply your changes to the latest version and "
                               "try again")
            if dry_run:
                return self.out(rt, obj)
            meta = obj["metadata"]
            grace = _pod_grace_period(obj, options.get("gracePeriodSeconds")) if rt.store_key == POD_KEY else 0
            finalizers = list(meta.get("finalizers") or [])
            if policy == "Foreground":
                finalizers = [f for f in finalizers if f != ORPHAN_FINALIZER]
                if FOREGROUND_FINALIZER not in finalizers:
                    finalizers.append(FOREGROUND_FINALIZER)
            elif policy == "Orphan":
                finalizers = [f for f in finalizers if f != FOREGROUND_FINALIZER]
                if ORPHAN_FINALIZER not in finalizers:
                    finalizers.append(ORPHAN_FINALIZER)
            if meta.get("deletionTimestamp"):
                # Being deleted already: a pod's shorter grace period (the kubelet's final delete with 0)
                # finishes it once no finalizer is left; a new propagation policy changes the finalizers.
                changed = copy.deepcopy(obj)
                changed["metadata"]["finalizers"] = finalizers
                if rt.store_key == POD_KEY and grace < int(meta.get("deletionGracePeriodSeconds") or 0):
                    changed["metadata"]["deletionGracePeriodSeconds"] = grace
                if not finalizers:
                    changed["metadata"].pop("finalizers")
                if changed == obj:
                    return self.out(rt, obj)
                if _deletion_complete(rt, changed):
                    return self.out(rt, self._remove(rt.store_key, obj))
                return self.out(rt, self.store.put(rt.store_key, changed, "MODIFIED"))
            if finalizers or grace > 0 or rt.store_key == NS_KEY:
                marked = copy.deepcopy(obj)
                marked["metadata"]["deletionTimestamp"] = now(grace)
                marked["metadata"]["deletionGracePeriodSeconds"] = grace
                if finalizers:
                    marked["metadata"]["finalizers"] = finalizers
                if rt.store_key == NS_KEY:
                    marked.setdefault("status", {})["phase"] = "Terminating"
                return self.out(rt, self.store.put(rt.store_key, marked, "MODIFIED"))
            return self.out(rt, self._remove(rt.store_key, obj))

    def _remove(self, key: tuple[str, str], obj: dict[str, Any]) -> dict[str, Any]:
        """Take the object out of storage; its dependents are the garbage collector's (asynchronously)."""
        meta = obj["metadata"]
        if key == CRD_KEY:
            # Not modelled: the CRD's cleanup finalizer; its custom objects go with it at once.
            types = self.registry.unregister_crd(meta["name"])
            if types:
                self.store.drop_kind(types[0].store_key)
        last = self.store.remove(key, meta.get("namespace", ""), meta["name"])
        return last if last is not None else obj

    def delete_collection(self, rt: ResourceType, ns: str | None, *, label_selector: str | None = None,
                          field_selector: str | None = None, propagation: str | None = None) -> dict[str, Any]:
        listing = self.list(rt, ns, label_selector=label_selector, field_selector=field_selector)
        for item in listing["items"]:
            try:
                self.delete(rt, item["metadata"].get("namespace", ""), item["metadata"]["name"],
                            propagation=propagation)
            except ApiError as exc:
                if exc.code != 404:
                    raise
        return listing

    # ------------------------------------------------------------ CRD bootstrap

    def ensure_namespace(self, name: str) -> None:
        rt = self.registry.get("", "v1", "namespaces")
        if rt is None:
            raise RuntimeError("invariant broken: rt is None")
        with self.store.txn():
            if self.store.get(NS_KEY, "", name) is None:
                self.create(rt, "", {"metadata": {"name": name}})

    def install_crd(self, crd: dict[str, Any]) -> None:
        """Create or replace a CustomResourceDefinition object (which registers its types)."""
        rt = self.registry.get(CRD_GROUP, "v1", "customresourcedefinitions")
        if rt is None:
            raise RuntimeError("invariant broken: rt is None")
        try:
            name = crd["metadata"]["name"]
        except (KeyError, TypeError):
            raise CrdError("a CustomResourceDefinition needs metadata.name") from None
        with self.store.txn():
            old = self.store.get(rt.store_key, "", name)
            if old is None:
                self.create(rt, "", crd)
            else:
                body = copy.deepcopy(crd)
                body["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
                self.replace(rt, "", name, body)
