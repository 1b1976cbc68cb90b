"""Building events exactly as Knative's ApiServerSource (Resource mode) and PingSource send them.

Used by the local relay (so `make run` delivers what a cluster delivers) and by tests.
"""

from __future__ import annotations

import json
from typing import Any

from streamspace.events import APISERVER_PREFIX, PING_TYPE, binary_headers

APISERVER_SOURCE = "https://10.96.0.1:443"


def subject_for(obj: dict[str, Any], plural: str) -> str:
    api_version = obj.get("apiVersion", "v1")
    meta = obj.get("metadata", {})
    namespace = meta.get("namespace")
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"/apis/{api_version}{scope}/{plural}/{meta.get('name', '')}"


def apiserver_event(action: str, obj: dict[str, Any], plural: str,
                    source: str = APISERVER_SOURCE) -> tuple[dict[str, str], bytes]:
    """(headers, body) of a `dev.knative.apiserver.resource.<action>` event for `obj`."""
    meta = obj.get("metadata", {})
    extensions = {
        "kind": str(obj.get("kind", "")),
        "name": str(meta.get("name", "")),
        "apiversion": str(obj.get("apiVersion", "")),
    }
    if meta.get("namespace"):
        extensions["namespace"] = str(meta["namespace"])
    headers = binary_headers(APISERVER_PREFIX + action, source, subject=subject_for(obj, plural),
                             extensions=extensions)
    return headers, json.dumps(obj).encode()


def ping_event(namespace: str, name: str, data: str,
               content_type: str = "application/json") -> tuple[dict[str, str], bytes]:
    headers = binary_headers(PING_TYPE, f"/apis/v1/namespaces/{namespace}/pingsources/{name}")
    headers["Content-Type"] = content_type
    return headers, data.encode()
