"""Shared constants and object builders for the simulated API server tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

WIDGET_CRD = Path(__file__).parent / "widget-crd.yaml"
GROUP, VERSION, PLURAL = "test.stream.space", "v1", "widgets"


def widget(name: str, **spec: object) -> dict:
    body = {"owner": "bob", "size": 2}
    body.update(spec)
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget", "metadata": {"name": name}, "spec": body}


def deployment(name: str, replicas: int = 1, image: str = "nginx:1.27", labels: dict | None = None) -> dict:
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)},
                         "spec": {"containers": [{"name": "main", "image": image,
                                                  "ports": [{"name": "http", "containerPort": 8080}]}]}},
        },
    }


CEILING = 30  # generous: the suite shares two cores with other workers


def eventually(predicate: Callable[[], object], what: str, timeout: float = CEILING) -> object:
    """Poll until `predicate()` is truthy and return it; fail naming `what` after the ceiling."""
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.02)
