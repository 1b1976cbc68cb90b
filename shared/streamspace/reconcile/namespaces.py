"""Sessions and Templates outside the sessions namespace are answered, never served.

StreamSpace serves one namespace (`SESSIONS_NAMESPACE`): the Roles that let it create pods, Services,
Ingresses and NetworkPolicies are granted there only, the API addresses sessions by name within it, and
its Pod Security level and NetworkPolicies are set up for desktops. A Session or Template applied
anywhere else (the earlier project's files name `workspaces` or `streamspace-test`) would otherwise
sit there with no status at all. The ApiServerSources for Sessions and Templates therefore watch every
namespace, and the reconcilers answer such an object with one status: not Ready, reason
`NamespaceNotServed`, and a message naming the namespace that is served and how to move there. Nothing
else is read or written for it (no index row, no owned object, no conversion of a legacy object); the
reconcilers hold a ClusterRole for exactly this (get the object, patch its status).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamspace import kube
from streamspace.config import environment
from streamspace.domain.conversion import API_GROUP, LEGACY_API_GROUP
from streamspace.events import now_rfc3339

NOT_SERVED = "NamespaceNotServed"
# kube.KINDS key of each (apiVersion group, kind) answered here.
KIND_KEYS = {(API_GROUP, "Session"): "Session", (API_GROUP, "Template"): "Template",
             (LEGACY_API_GROUP, "Session"): "LegacySession",
             (LEGACY_API_GROUP, "Template"): "LegacyTemplate"}


def sessions_namespace() -> str:
    return environment().sessions_namespace


def served(namespace: str | None) -> bool:
    return namespace == sessions_namespace()


def not_served_message(kind: str, namespace: str, served_namespace: str) -> str:
    return (f"not served: StreamSpace serves {kind}s in namespace {served_namespace} only (its setting "
            f"SESSIONS_NAMESPACE), not in {namespace}; create this {kind} in {served_namespace}")


def not_served_status(obj: Mapping[str, Any], served_namespace: str, now: str) -> dict[str, Any]:
    """The status of a Session, Template or legacy object outside the served namespace (pure)."""
    meta = obj.get("metadata") or {}
    kind = str(obj.get("kind") or "")
    group = str(obj.get("apiVersion") or "").partition("/")[0]
    message = not_served_message(kind, str(meta.get("namespace") or ""), served_namespace)
    old = {str(c.get("type")): c for c in (obj.get("status") or {}).get("conditions") or []
           if isinstance(c, Mapping)}
    # The legacy CRDs report their outcome in Converted; ours in Ready.
    ctype = "Converted" if group == LEGACY_API_GROUP else "Ready"
    previous = old.get(ctype)
    since = str(previous["lastTransitionTime"]) if previous and previous.get("status") == "False" \
        and previous.get("reason") == NOT_SERVED and previous.get("lastTransitionTime") else now
    status: dict[str, Any] = {
        "observedGeneration": int(meta.get("generation") or 0),
        "conditions": [{"type": ctype, "status": "False", "lastTransitionTime": since, "reason": NOT_SERVED,
                        "message": message}],
    }
    if group == API_GROUP:
        status["phase"] = "Failed" if kind == "Session" else "Invalid"
        status["message"] = message
    return status


def answer_not_served(api_version: str, kind: str, namespace: str, name: str) -> str:
    """Write the not-served status on the object as it is now (level-triggered); nothing when it is
    already there or the object is gone."""

    key = KIND_KEYS[(api_version.partition("/")[0], kind)]
    live = kube.get(key, name, namespace)
    if live is None or (live.get("metadata") or {}).get("deletionTimestamp"):
        return "ignored"
    live.setdefault("kind", kind)
    live.setdefault("apiVersion", api_version)
    status = not_served_status(live, sessions_namespace(), now_rfc3339())
    current = live.get("status") or {}
    if all(current.get(k) == v for k, v in status.items()):
        return "not served"
    kube.apply_status(key, name, namespace, status)
    return "not served"
