"""End to end with the local stand-in for Knative Eventing: the relay watches the simulated cluster
and delivers every change as ApiServerSource events, including the echoes of our own writes and the
Deployment status changes. The system must converge and then fall quiet (no event loop)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from streamspace import kube
from streamspace.db import fetch_one

from .reconcile_helpers import NS, get, session_manifest, template_manifest


@pytest.fixture(scope="module")
def relay(function_url, sim) -> Iterator[Any]:
    from streamspace.local.relay import Relay

    urls = {name: function_url(name) for name in ("session-reconcile", "template-reconcile")}
    running = Relay(urls, NS, backoff_seconds=0.05).start(watch=True, schedule=False)
    time.sleep(0.3)  # let the watches list and start streaming
    yield running
    running.stop()


def eventually(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("the cluster did not converge in time")


def phase(name: str) -> str | None:
    obj = get("Session", name)
    return ((obj or {}).get("status") or {}).get("phase")


def quiet(relay: Any) -> int:
    """Wait until no more events flow; returns how many were delivered so far."""
    count = -1
    while count != len(relay.delivered):
        count = len(relay.delivered)
        relay.wait_idle()
        time.sleep(0.5)
    return count


def test_a_kubectl_session_converges_through_real_event_streams_and_then_falls_quiet(relay, sim):
    kube.create(template_manifest("firefox"))
    kube.create(session_manifest("lena-e2e", user="lena"))
    eventually(lambda: phase("lena-e2e") == "Running")
    settled = quiet(relay)
    assert all(status == 200 for _, _, status in relay.delivered), relay.delivered
    sim.clear_requests()
    time.sleep(1.0)
    assert len(relay.delivered) == settled  # nothing keeps feeding itself
    assert [r for r in sim.requests if r.method != "GET"] == []

    kube.merge_patch("Session", "lena-e2e", {"spec": {"state": "hibernated"}}, NS)
    eventually(lambda: phase("lena-e2e") == "Hibernated")
    assert kube.get("Deployment", "ss-lena-e2e", NS)["spec"]["replicas"] == 0  # type: ignore[index]
    kube.merge_patch("Session", "lena-e2e", {"spec": {"state": "running"}}, NS)
    eventually(lambda: phase("lena-e2e") == "Running")

    kube.delete("Session", "lena-e2e", NS)
    eventually(lambda: fetch_one("SELECT 1 FROM sessions WHERE name = 'lena-e2e'") is None)
    quiet(relay)
    assert all(status == 200 for _, _, status in relay.delivered), relay.delivered
    assert get("Deployment", "ss-lena-e2e") is None
