"""idle-sweep over real HTTP (PingSource events): idle sessions hibernate, old ones terminate, active
and woken ones are left alone; each transition leaves an audit row and a Kubernetes Event."""

from __future__ import annotations

import json

import pytest

from streamspace import kube
from streamspace.db import execute, fetch_all, fetch_one

from .reconcile_helpers import NS, add_template, deliver, get, live, ping, post, session_manifest


@pytest.fixture(scope="module")
def urls(function_url, sim):
    urls = {"sweep": function_url("idle-sweep"), "session": function_url("session-reconcile"),
            "template": function_url("template-reconcile")}
    add_template(urls["template"], "firefox")
    return urls


def start(urls: dict, name: str, **spec) -> None:
    obj = kube.create(session_manifest(name, user="hank", **spec))
    obj.setdefault("kind", "Session")
    assert deliver(urls["session"], "add", obj) == 200


def set_row(name: str, sql: str) -> None:
    execute(f"UPDATE sessions SET {sql} WHERE namespace = %s AND name = %s", (NS, name))  # noqa: S608 - test


def row(name: str) -> dict:
    found = fetch_one("SELECT * FROM sessions WHERE namespace = %s AND name = %s", (NS, name))
    assert found is not None
    return found


def spec_state(name: str) -> str:
    return live("Session", name)["spec"]["state"]


def audit(name: str) -> list[str]:
    return [r["action"] for r in fetch_all("SELECT action FROM audit_log WHERE target_type = 'session'"
                                           " AND target = %s ORDER BY id", (name,))]


def k8s_events(name: str) -> list[dict]:
    return [e for e in kube.list_objects("Event", NS) if e["involvedObject"]["name"] == name]


def test_the_sweep_hibernates_only_sessions_idle_past_their_timeout(urls, sim):
    start(urls, "hank-idle")  # idleTimeout defaults to 30m (CRD default)
    start(urls, "hank-active")
    start(urls, "hank-never", idleTimeout="0")
    start(urls, "hank-default")
    start(urls, "hank-long", idleTimeout="4h")
    for name in ("hank-idle", "hank-never", "hank-default", "hank-long"):
        set_row(name, "last_activity = now() - interval '2 hours'")
    set_row("hank-default", "idle_timeout_seconds = NULL")  # the configured default (30m) applies
    assert row("hank-idle")["idle_timeout_seconds"] == 1800
    assert row("hank-never")["idle_timeout_seconds"] == 0

    assert ping(urls["sweep"], "idle-sweep") == 200
    assert spec_state("hank-idle") == "hibernated"
    assert spec_state("hank-default") == "hibernated"
    for name in ("hank-active", "hank-never", "hank-long"):
        assert spec_state(name) == "running", name
        assert row(name)["state"] == "running"
    assert row("hank-idle")["state"] == "hibernated"
    assert audit("hank-idle") == ["session.hibernate"]
    assert audit("hank-active") == []
    event = k8s_events("hank-idle")
    assert len(event) == 1
    assert event[0]["reason"] == "IdleTimeout"
    assert event[0]["involvedObject"]["kind"] == "Session"
    assert event[0]["involvedObject"]["uid"] == live("Session", "hank-idle")["metadata"]["uid"]

    # session-reconcile turns the patch into replicas 0 and a Hibernated condition saying why
    assert deliver(urls["session"], "update", live("Session", "hank-idle")) == 200
    assert live("Deployment", "ss-hank-idle")["spec"]["replicas"] == 0
    status = live("Session", "hank-idle")["status"]
    assert status["phase"] == "Hibernated"
    hibernated = next(c for c in status["conditions"] if c["type"] == "Hibernated")
    assert (hibernated["status"], hibernated["reason"]) == ("True", "IdleTimeout")


def hibernated_by_the_sweep(urls: dict, name: str) -> None:
    """A session of this test's own, idle, hibernated by a tick and reconciled."""
    start(urls, name)
    set_row(name, "last_activity = now() - interval '2 hours'")
    assert ping(urls["sweep"], "idle-sweep") == 200
    assert spec_state(name) == "hibernated"
    assert deliver(urls["session"], "update", live("Session", name)) == 200


def test_a_second_tick_changes_nothing(urls, sim):
    hibernated_by_the_sweep(urls, "hank-tick")  # that first tick also swept whatever else was due
    sim.clear_requests()
    assert ping(urls["sweep"], "idle-sweep") == 200
    assert sim.requests == []
    assert audit("hank-tick") == ["session.hibernate"]


def test_a_woken_session_is_not_hibernated_again_at_once(urls, sim):
    hibernated_by_the_sweep(urls, "hank-woken")
    woken = kube.merge_patch("Session", "hank-woken", {"spec": {"state": "running"}}, NS)
    woken.setdefault("kind", "Session")
    assert deliver(urls["session"], "update", woken) == 200  # hibernated -> running: activity clock reset
    assert row("hank-woken")["state"] == "running"
    assert ping(urls["sweep"], "idle-sweep") == 200
    assert spec_state("hank-woken") == "running"
    assert live("Deployment", "ss-hank-woken")["spec"]["replicas"] == 1
    assert "stream.space/hibernation-reason" not in (live("Session", "hank-woken")["metadata"].get("annotations")
                                                     or {})


def test_sessions_past_their_maximum_duration_are_terminated_with_a_reason(urls, sim):
    start(urls, "hank-old")
    start(urls, "hank-unlimited", maxSessionDuration="0")
    start(urls, "hank-old-default")
    for name in ("hank-old", "hank-unlimited", "hank-old-default"):
        set_row(name, "created_at = now() - interval '9 hours'")  # active, but older than 8h
    set_row("hank-old-default", "max_duration_seconds = NULL")
    assert ping(urls["sweep"], "idle-sweep") == 200
    assert spec_state("hank-old") == "terminated"
    assert spec_state("hank-old-default") == "terminated"
    assert spec_state("hank-unlimited") == "running"
    assert audit("hank-old") == ["session.terminate"]
    assert k8s_events("hank-old")[0]["reason"] == "MaxSessionDurationExceeded"
    assert deliver(urls["session"], "update", live("Session", "hank-old")) == 200
    status = live("Session", "hank-old")["status"]
    assert status["phase"] == "Terminated"
    why = next(c for c in status["conditions"] if c["type"] == "Terminated")
    assert why["reason"] == "MaxSessionDurationExceeded"
    assert "maximum duration" in why["message"]
    assert get("Deployment", "ss-hank-old") is None


def test_auto_hibernation_off_keeps_idle_sessions_running(urls, sim):
    start(urls, "hank-idle2")
    set_row("hank-idle2", "last_activity = now() - interval '2 hours'")
    execute("UPDATE configuration SET value = 'false' WHERE key = 'session.enableAutoHibernation'")
    try:
        assert ping(urls["sweep"], "idle-sweep") == 200
        assert spec_state("hank-idle2") == "running"
    finally:
        execute("UPDATE configuration SET value = 'true' WHERE key = 'session.enableAutoHibernation'")


@pytest.mark.parametrize(("status", "answer"), [(500, 503), (403, 422)])
def test_a_failed_patch_releases_the_session_for_the_next_tick_and_is_retried_only_when_that_can_help(
        urls, sim, status, answer):
    """A server error asks for a retry (503); RBAC refusing the patch (403) would refuse every retry the
    same way, so the tick is refused (422, to the dead-letter sink) instead. Either way the session is
    released, and the next tick changes it."""
    name = f"hank-idle-{status}"
    start(urls, name)
    set_row(name, "last_activity = now() - interval '2 hours'")
    sim.inject_failure(method="PATCH", path_regex=f"/sessions/{name}$", status=status, times=1)
    try:
        assert ping(urls["sweep"], "idle-sweep") == answer
    finally:
        sim.clear_failures()
    assert row(name)["state"] == "running"
    assert spec_state(name) == "running"
    assert ping(urls["sweep"], "idle-sweep") == 200
    assert spec_state(name) == "hibernated"


def test_a_row_whose_session_is_gone_is_dropped(urls, sim):
    start(urls, "hank-vanished")
    kube.delete("Session", "hank-vanished", NS)  # its delete event was lost
    set_row("hank-vanished", "last_activity = now() - interval '2 hours'")
    assert ping(urls["sweep"], "idle-sweep") == 200
    assert fetch_one("SELECT 1 FROM sessions WHERE name = 'hank-vanished'") is None


def test_pings_that_are_not_for_the_sweep_answer_400(urls, sim):
    from streamspace.events.apiserver import apiserver_event, ping_event

    headers, body = ping_event(NS, "resync", json.dumps({"task": "resync"}))
    assert post(urls["sweep"], headers, body)[0] == 400
    headers, body = ping_event(NS, "idle-sweep", "not json")
    assert post(urls["sweep"], headers, body)[0] == 400
    session = kube.create(session_manifest("hank-foreign", user="hank"))
    session.setdefault("kind", "Session")
    headers, body = apiserver_event("update", session, "sessions")
    assert post(urls["sweep"], headers, body)[0] == 400
