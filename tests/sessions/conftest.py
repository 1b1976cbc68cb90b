"""Shared helpers of the sessions, templates and config tests: real HTTP, real Postgres, the
simulated API server (no reconcile runs here: tests write Session/Template status themselves)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import Client, client_for, make_user, token_for  # noqa: F401 - shared with the tests

NAMESPACE = "streamspace"


def template_manifest(name: str, *, cpu: str = "500m", memory: str = "512Mi", with_defaults: bool = True,
                      category: str = "Web Browsers", tags: tuple[str, ...] = ("browser",),
                      app_type: str = "desktop") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "displayName": name.title(), "description": f"{name} for tests", "category": category,
        "tags": list(tags), "baseImage": f"lscr.io/linuxserver/{name}:latest", "appType": app_type,
        "ports": [{"name": "vnc", "containerPort": 3000, "protocol": "TCP"}],
        "vnc": {"enabled": True, "port": 3000, "protocol": "websocket"},
    }
    if with_defaults:
        spec["defaultResources"] = {"memory": memory, "cpu": cpu}
    return {"apiVersion": "stream.space/v1alpha1", "kind": "Template",
            "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}


def put_template(name: str, *, phase: str | None = "Ready", message: str = "", **kw: Any) -> dict[str, Any]:
    """Create a Template on the cluster and (standing in for template-reconcile) set its status."""
    from streamspace import kube

    kube.delete("Template", name, NAMESPACE)
    obj = kube.create(template_manifest(name, **kw))
    if phase is not None:
        obj = kube.merge_patch("Template", name, {"status": {"phase": phase, "message": message}}, NAMESPACE,
                               subresource="status")
    return obj


def set_session_status(name: str, **status: Any) -> dict[str, Any]:
    """Stand in for session-reconcile: write a Session's status on the cluster."""
    from streamspace import kube

    return kube.merge_patch("Session", name, {"status": status}, NAMESPACE, subresource="status")


def session_object(name: str) -> dict[str, Any] | None:
    from streamspace import kube

    return kube.get("Session", name, NAMESPACE)


def index_row(name: str) -> dict[str, Any] | None:
    from streamspace.db import fetch_one

    return fetch_one("SELECT * FROM sessions WHERE namespace = %s AND name = %s", (NAMESPACE, name))


@dataclass
class World:
    base: str
    alice: Client
    bob: Client
    admin: Client
    anonymous: Client


@pytest.fixture(scope="module")
def world(sim: Any, serve: Any) -> Iterator[World]:
    base = serve("sessions", "templates", "config")
    yield World(base, client_for(base, "alice"), client_for(base, "bob"), client_for(base, "root", "admin"),
                Client(base, None))
