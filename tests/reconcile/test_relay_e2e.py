"""End to end with the local stand-in for Knative Eventing: the relay watches the simulated cluster
and delivers every change as ApiServerSource events, including the echoes of our own writes and the
Deployment status changes. The system must converge and then fall quiet (no event loop)."""

from __future__ import annotations

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
    # An ApiServerSource sends only changes after its first list: wait for it, not for a fixed time.
    assert running.wait_watching(timeout=60), "the relay's watches never listed"
    yield running
    running.stop()


CEILING = 60.0  # generous: the suite shares two cores with other workers


def converges(relay: Any, predicate: Callable[[], bool], what: str) -> None:
    assert relay.wait_until(predicate, timeout=CEILING), f"the cluster did not converge: {what}"


def phase(name: str) -> str | None:
    obj = get("Session", name)
    return ((obj or {}).get("status") or {}).get("phase")


def falls_quiet(relay: Any, sim: Any) -> None:
    """Wait until nothing is in flight and every watch has passed on the newest change of its kind.
    An event loop (a reconcile answering its own echo with another write) never gets there."""
    def newest_change(kind: str, selector: str | None) -> int:
        return sim.last_change(kube.KINDS[kind].api_version, kube.KINDS[kind].kind_of(kind), NS, selector)

    converges(relay, lambda: relay.caught_up(newest_change), "events still flowing (an event loop?)")


def test_a_kubectl_session_converges_through_real_event_streams_and_then_falls_quiet(relay, sim):
    kube.create(template_manifest("firefox"))
    kube.create(session_manifest("lena-e2e", user="lena"))
    converges(relay, lambda: phase("lena-e2e") == "Running", "the session never ran")
    falls_quiet(relay, sim)
    assert all(status == 200 for _, _, status in relay.delivered), relay.delivered

    kube.merge_patch("Session", "lena-e2e", {"spec": {"state": "hibernated"}}, NS)
    converges(relay, lambda: phase("lena-e2e") == "Hibernated", "the session never hibernated")
    assert kube.get("Deployment", "ss-lena-e2e", NS)["spec"]["replicas"] == 0  # type: ignore[index]
    kube.merge_patch("Session", "lena-e2e", {"spec": {"state": "running"}}, NS)
    converges(relay, lambda: phase("lena-e2e") == "Running", "the session never woke")

    kube.delete("Session", "lena-e2e", NS)
    converges(relay, lambda: fetch_one("SELECT 1 FROM sessions WHERE name = 'lena-e2e'") is None,
              "the index row of the deleted session stayed")
    falls_quiet(relay, sim)
    assert fetch_one("SELECT 1 FROM sessions WHERE name = 'lena-e2e'") is None, "a late event restored the row"
    assert all(status == 200 for _, _, status in relay.delivered), relay.delivered
    converges(relay, lambda: get("Deployment", "ss-lena-e2e") is None, "the Deployment was not collected")


def test_a_prepull_template_converges_through_the_daemonset_events_and_falls_quiet(relay, sim):
    """The image puller's own events (its status counting nodes) reach template-reconcile through the
    relay's DaemonSet watch, the Template's status ends up counting every node, and nothing loops."""

    def counted() -> bool:
        status = ((get("Template", "prepull-e2e") or {}).get("status") or {}).get("prePull") or {}
        return bool(status.get("nodesDesired")) and status.get("nodesReady") == status.get("nodesDesired")

    kube.create(template_manifest("prepull-e2e", image="registry.example/prepull/e2e:1", prePull=True))
    converges(relay, counted, "the template never counted the nodes that have its image")
    falls_quiet(relay, sim)
    condition = next(c for c in get("Template", "prepull-e2e")["status"]["conditions"]  # type: ignore[index]
                     if c["type"] == "ImagePrePulled")
    assert condition["status"] == "True"
    assert all(status == 200 for _, _, status in relay.delivered), relay.delivered
