"""legacy-convert: Templates and Sessions of the earlier StreamSpace's API group keep working.

The earlier project served `stream.streamspace.io/v1alpha1`. Its CRDs ship again as legacy CRDs
(crds/legacy-stream.streamspace.io.yaml), so old manifests still apply; this reconciler converts
each legacy object into a `stream.space/v1alpha1` object of the same kind in the same namespace
(server-side apply, the same converters as `convert-template` / `convert-session` and catalog
sync) and reports the result in the legacy object's status: condition `Converted`, the converted
object's name, and every change or problem.

The converted object has the legacy object as its controller owner, so deleting the legacy object
deletes what it became (the garbage collector does it, no event needed); editing the legacy object
re-converts it. The legacy object is the source of truth: edits made to the converted object
directly are overwritten at the next change of the legacy one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamspace import kube
from streamspace.domain.conversion import API_VERSION, LEGACY_API_VERSION, Conversion
from streamspace.domain.sessions import convert_session_manifest
from streamspace.domain.templates import convert_template_manifest
from streamspace.events import MalformedEvent, ResourceEvent, now_rfc3339

MESSAGE_LIMIT = 32768
LEGACY_KINDS = {"Template": "LegacyTemplate", "Session": "LegacySession"}
CONVERTERS = {"Template": convert_template_manifest, "Session": convert_session_manifest}


def handle_legacy_event(ev: ResourceEvent) -> str:
    if ev.api_version != LEGACY_API_VERSION or ev.kind not in LEGACY_KINDS or not ev.namespace:
        raise MalformedEvent(f"legacy-convert handles namespaced {LEGACY_API_VERSION} Templates and "
                             f"Sessions, not {ev.api_version} {ev.kind}")
    if ev.action == "delete":
        return "deleted"  # the converted object is owned by the legacy one: the garbage collector removes it
    # Level-triggered: convert what the cluster holds now, not what an old or repeated event carried.
    live = kube.get(LEGACY_KINDS[ev.kind], ev.name, ev.namespace)
    if live is None or (live.get("metadata") or {}).get("deletionTimestamp"):
        return "deleted"
    live.setdefault("kind", ev.kind)
    live.setdefault("apiVersion", ev.api_version)
    return convert_legacy_object(ev.kind, live)


def convert_legacy_object(kind: str, obj: Mapping[str, Any]) -> str:
    """Convert one legacy object, apply the result, and write the legacy object's status."""
    meta = obj.get("metadata") or {}
    namespace, name = str(meta["namespace"]), str(meta["name"])
    conversion = CONVERTERS[kind](obj)
    converted_name = None
    if conversion.manifest is not None:
        manifest = conversion.manifest
        manifest["metadata"]["namespace"] = namespace
        manifest["metadata"]["ownerReferences"] = [{
            "apiVersion": LEGACY_API_VERSION, "kind": kind, "name": name, "uid": str(meta.get("uid") or ""),
            "controller": True,
        }]
        converted_name = kube.apply(manifest)["metadata"]["name"]
    status = legacy_status(obj, conversion, converted_name, now_rfc3339())
    current = obj.get("status") or {}
    if any(current.get(key) != status.get(key) for key in ("conditions", "convertedTo", "observedGeneration")):
        kube.apply_status(LEGACY_KINDS[kind], name, namespace, status)
    return "converted" if converted_name else "refused"


def legacy_status(obj: Mapping[str, Any], conversion: Conversion, converted_name: str | None,
                  now: str) -> dict[str, Any]:
    """The status written on a legacy object (a pure function of what conversion found)."""
    meta = obj.get("metadata") or {}
    kind = str(obj.get("kind"))
    old = {str(c.get("type")): c for c in (obj.get("status") or {}).get("conditions") or [] if isinstance(c, Mapping)}
    if converted_name is not None:
        value, reason = "True", "Converted"
        message = f"served as {API_VERSION} {kind} {converted_name}"
        if conversion.warnings:
            message += "; changed: " + "; ".join(conversion.warnings)
    else:
        value, reason = "False", "ConversionFailed"
        message = f"cannot be converted to {API_VERSION}: " + "; ".join(conversion.problems)
    previous = old.get("Converted")
    since = str(previous["lastTransitionTime"]) if previous and previous.get("status") == value \
        and previous.get("lastTransitionTime") else now
    status: dict[str, Any] = {
        "observedGeneration": int(meta.get("generation") or 0),
        "conditions": [{"type": "Converted", "status": value, "reason": reason,
                        "message": message[:MESSAGE_LIMIT], "lastTransitionTime": since}],
        "convertedTo": ({"apiVersion": API_VERSION, "kind": kind, "name": converted_name}
                        if converted_name else None),
    }
    return status
