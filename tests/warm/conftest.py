"""Warm pools end to end: the sessions, templates, config and metrics functions over real HTTP, the
reconcile functions fed by the local relay (ApiServerSource events from the simulated cluster's
watches), a real Postgres. The simulated kubelet takes START_SECONDS to start a container, so a
desktop that replaces a claimed one is not Ready while a burst of launches is still claiming (the
tests wait for events; times are measured in bench/, never asserted here)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from streamspace import kube
from tests.conftest import Client, client_for, simulated_cluster

NS = "streamspace"
CEILING = 60.0  # generous: the suite shares two cores with other workers
START_SECONDS = 5.0


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """As the suite's `sim` (tests/conftest.py), with container starts that take time."""
    with simulated_cluster(tmp_path_factory.mktemp("kube"), start_seconds=START_SECONDS) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def relay(db_url: str, sim: Any) -> Iterator[Any]:
    from streamspace.local.gateway import load_function_app
    from streamspace.local.relay import Relay
    from streamspace.local.server import BackgroundServer

    servers = {name: BackgroundServer(load_function_app(name)).start()
               for name in ("session-reconcile", "template-reconcile")}
    running = Relay({name: s.url for name, s in servers.items()}, NS, backoff_seconds=0.05).start(
        watch=True, schedule=False)
    assert running.wait_watching(timeout=CEILING), "the relay's watches never listed"
    yield running
    running.stop()
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module")
def base(serve: Callable[..., str], relay: Any) -> str:
    return serve("sessions", "templates", "config", "metrics")


@pytest.fixture(scope="module")
def admin(base: str) -> Client:
    client = client_for(base, "warm-admin", "admin")
    # Room for every pool this module's tests keep (the budget test sets its own).
    assert client.patch("/api/v1/config", json={"warmPool.budget": 100}).status_code == 200
    return client


def template_body(name: str, size: int, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name, "displayName": name.title(), "baseImage": f"lscr.io/linuxserver/{name}:latest",
        "defaultResources": {"memory": "256Mi", "cpu": "100m"}, "vnc": {"enabled": True, "port": 3000},
        "warmPool": {"size": size},
    }
    body.update(extra)
    return body


def pool_pods(template: str) -> list[dict[str, Any]]:
    """The unclaimed desktops of a Template's pool (any readiness)."""
    return [p for p in kube.list_objects("Pod", NS, label_selector=f"app.kubernetes.io/name=streamspace-warm,"
                                                                   f"stream.space/template={template}")
            if not p["metadata"].get("deletionTimestamp")]


def ready_pool(template: str) -> list[dict[str, Any]]:
    from streamspace.domain.warm import pod_ready

    return [p for p in pool_pods(template) if pod_ready(p)]


def replaced(template: str, before: set[str], size: int) -> bool:
    """Whether `size` desktops are ready and none of them is one of `before`, judged on ONE list:
    counting ready desktops on one read and comparing names on another passes in the moment after
    the old desktops got their deletionTimestamp and before the new ones are ready (the first read
    still counts the old ones ready, the second no longer lists them)."""
    ready = {p["metadata"]["name"] for p in ready_pool(template)}
    return len(ready) == size and not ready & before


def phase(name: str) -> str | None:
    obj = kube.get("Session", name, NS)
    return ((obj or {}).get("status") or {}).get("phase")


def converges(relay: Any, predicate: Callable[[], object], what: str) -> None:
    assert relay.wait_until(lambda: bool(predicate()), timeout=CEILING), f"not within {CEILING:.0f} s: {what}"
