"""Helpers of the reconcile tests: objects on the simulated cluster, CloudEvents as Knative sends them."""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request
from typing import Any

from streamspace import kube
from streamspace.events.apiserver import apiserver_event, ping_event

NS = "streamspace"
OWNED = ("Deployment", "Service", "Ingress", "NetworkPolicy")
PLURALS = {"Session": "sessions", "Template": "templates", "Deployment": "deployments"}


def template_manifest(name: str, image: str = "lscr.io/linuxserver/firefox:latest", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "displayName": name.title(),
        "baseImage": image,
        "defaultResources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
        "ports": [{"name": "vnc", "containerPort": 3000, "protocol": "TCP"}],
        "env": [{"name": "TZ", "value": "Etc/UTC"}],
        "volumeMounts": [{"name": "user-home", "mountPath": "/config"}],
        "vnc": {"enabled": True, "port": 3000, "protocol": "websocket"},
    }
    body.update(spec)
    return {"apiVersion": "stream.space/v1alpha1", "kind": "Template",
            "metadata": {"name": name, "namespace": NS}, "spec": body}


def session_manifest(name: str, user: str = "alice", template: str = "firefox", state: str = "running",
                     labels: bool = True, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"user": user, "template": template, "state": state}
    body.update(spec)
    meta: dict[str, Any] = {"name": name, "namespace": NS}
    if labels:
        meta["labels"] = {"stream.space/user": user, "stream.space/template": template}
    return {"apiVersion": "stream.space/v1alpha1", "kind": "Session", "metadata": meta, "spec": body}


def post(url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url.rstrip("/") + "/", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def deliver(url: str, action: str, obj: dict[str, Any]) -> int:
    """POST an ApiServerSource Resource-mode event for `obj`; returns the HTTP status."""
    obj = copy.deepcopy(obj)
    if "kind" not in obj:
        _kind_of(obj)
    obj.setdefault("apiVersion", _api_version_of(obj["kind"]))
    headers, body = apiserver_event(action, obj, PLURALS.get(obj["kind"], obj["kind"].lower() + "s"))
    status, answer = post(url, headers, body)
    assert not answer.strip().startswith(b"{\"specversion"), "a CloudEvent in a 200 body is published as a reply"
    return status


def add_template(template_reconcile: str, name: str, **manifest: Any) -> dict[str, Any]:
    """Create a Template (`template_manifest(name, **manifest)`) and deliver its add event to
    template-reconcile at `template_reconcile`, which must accept it; returns the created object."""
    template = kube.create(template_manifest(name, **manifest))
    template.setdefault("kind", "Template")
    assert deliver(template_reconcile, "add", template) == 200
    return template


def ping(url: str, name: str) -> int:
    headers, body = ping_event(NS, name, json.dumps({"task": name}))
    return post(url, headers, body)[0]


def _kind_of(obj: dict[str, Any]) -> str:
    raise AssertionError(f"object without kind: {obj.get('metadata')}")


def _api_version_of(kind: str) -> str:
    return kube.KINDS[kind].api_version


def get(kind: str, name: str) -> dict[str, Any] | None:
    return kube.get(kind, name, NS)


def live(kind: str, name: str) -> dict[str, Any]:
    obj = kube.get(kind, name, NS)
    assert obj is not None, f"{kind} {name} does not exist"
    obj.setdefault("kind", kind)
    obj.setdefault("apiVersion", _api_version_of(kind))
    return obj


def owned_specs(session: str) -> dict[str, Any]:
    """The owned objects' content (spec, labels, annotations), for comparing convergence."""
    out: dict[str, Any] = {}
    for kind in OWNED:
        obj = kube.get(kind, f"ss-{session}", NS)
        if obj is None:
            out[kind] = None
            continue
        meta = obj["metadata"]
        out[kind] = {"spec": obj.get("spec"), "labels": meta.get("labels"), "annotations": meta.get("annotations"),
                     "owners": [(r["kind"], r["name"], r["uid"], r.get("controller")) for r in
                                meta.get("ownerReferences") or []]}
    return out


def writes(requests: list[Any]) -> list[Any]:
    return [r for r in requests if r.method in ("POST", "PUT", "PATCH", "DELETE")]


def reads(requests: list[Any]) -> list[Any]:
    return [r for r in requests if r.method == "GET"]
