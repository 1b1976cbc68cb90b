"""resync over real HTTP (PingSource events): whatever the event stream missed is repaired."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from streamspace import kube
from streamspace.db import execute, fetch_one
from streamspace.reconcile.pullers import CONDITION, puller_name

from .reconcile_helpers import NS, deliver, get, live, ping, session_manifest, template_manifest, writes


@pytest.fixture(scope="module")
def urls(function_url, sim):
    return {"resync": function_url("resync"), "session": function_url("session-reconcile"),
            "template": function_url("template-reconcile")}


def row(name: str) -> Any:
    return fetch_one("SELECT * FROM sessions WHERE namespace = %s AND name = %s", (NS, name))


@pytest.fixture(scope="module", autouse=True)
def firefox(urls, sim):
    kube.create(template_manifest("firefox"))  # made Ready by the first resync of whichever test runs first


def dropped_session(urls: dict, name: str) -> dict:
    """A Session of this test's own whose events were all lost, brought to Running by resyncs alone."""
    kube.create(session_manifest(name, user="ivy"))
    assert ping(urls["resync"], "resync") == 200  # applies its objects
    assert ping(urls["resync"], "resync") == 200  # the pod is Ready by now: Running (a missed Deployment event)
    session = live("Session", name)
    assert session["status"]["phase"] == "Running"
    return session


def test_objects_created_while_no_event_was_delivered_are_reconciled(urls, sim):
    kube.create(template_manifest("firefox-dropped"))  # no Template event
    kube.create(session_manifest("ivy-dropped", user="ivy", template="firefox-dropped"))  # no Session event either
    assert ping(urls["resync"], "resync") == 200
    template = live("Template", "firefox-dropped")
    assert template["status"]["phase"] == "Ready"
    session = live("Session", "ivy-dropped")
    assert session["status"]["observedGeneration"] == session["metadata"]["generation"]
    for kind in ("Deployment", "Service", "Ingress", "NetworkPolicy"):
        assert get(kind, "ss-ivy-dropped") is not None, kind
    assert row("ivy-dropped")["username"] == "ivy"
    assert ping(urls["resync"], "resync") == 200  # the pod is Ready by now: Running (a missed Deployment event)
    assert live("Session", "ivy-dropped")["status"]["phase"] == "Running"


def test_a_resync_of_a_converged_namespace_writes_nothing(urls, sim):
    dropped_session(urls, "ivy-converged")  # two resyncs: whatever else is in the namespace converges too
    sim.clear_requests()
    assert ping(urls["resync"], "resync") == 200
    log = sim.requests
    assert not writes(log), log
    assert len(log) <= 9, log  # lists: Templates, Sessions, 4 owned kinds, claims, pods, image pullers


def test_templates_no_event_announced_are_reconciled_with_one_list_of_templates_and_of_pullers(urls, sim):
    """A fresh installation: Templates made before the event source started. One resync validates
    them all and makes their image pullers, with one list of Templates and one of pullers whatever
    their number (it listed both again for each Template to reconcile: 2N lists of N)."""
    images = [f"registry.example/resync/fresh-{uuid.uuid4().hex[:8]}:{i}" for i in range(2)]
    names = [f"fresh-{uuid.uuid4().hex[:6]}-{i}" for i in range(5)]
    for i, name in enumerate(names):
        kube.create(template_manifest(name, image=images[i % 2], prePull=True))
    sim.clear_requests()
    assert ping(urls["resync"], "resync") == 200
    lists = [f"{r.path}?{r.query}" for r in sim.requests
             if r.method == "GET" and r.path.endswith(("/templates", "/daemonsets")) and "watch" not in r.query]
    assert sorted(path.split("?")[0].rsplit("/", 1)[1] for path in lists) == ["daemonsets", "templates"], lists
    for name in names:
        status = live("Template", name)["status"]
        assert status["phase"] == "Ready", (name, status)
        assert any(c["type"] == CONDITION for c in status["conditions"]), (name, status)
    for image in images:
        assert get("DaemonSet", puller_name(image)) is not None, image


def due(template: str) -> bool:
    return fetch_one("SELECT sessions_due FROM template_index WHERE namespace = %s AND name = %s",
                     (NS, template))["sessions_due"]


def test_a_template_resync_reconciled_is_not_left_due_for_its_sessions(urls, sim):
    """resync reconciles a Template without fanning out to its Sessions (it reconciles every Session
    itself, against the index it just wrote): it records that fan-out done, so the echo of the status
    it wrote reconciles no Session again. A Session that failed leaves its Template due."""
    suffix = uuid.uuid4().hex[:6]
    kept, failing = f"due-kept-{suffix}", f"due-failing-{suffix}"
    for template in (kept, failing):
        kube.create(template_manifest(template))  # no events: as before the event source started
        kube.create(session_manifest(f"ivy-{template}", user="ivy", template=template))
    sim.inject_failure(method="PATCH", path_regex=f"/sessions/ivy-{failing}/status$", status=500, times=1)
    try:
        assert ping(urls["resync"], "resync") == 503  # the failing Session asks for a retry
    finally:
        sim.clear_failures()
    assert (due(kept), due(failing)) == (False, True)
    sim.clear_requests()
    assert deliver(urls["template"], "update", live("Template", kept)) == 200  # the echo of its status
    assert not [r for r in sim.requests if r.path.endswith("/sessions")], sim.requests
    assert deliver(urls["template"], "update", live("Template", failing)) == 200  # its fan-out: done now
    assert live("Session", f"ivy-{failing}")["status"]["observedGeneration"] == 1
    assert due(failing) is False


def test_a_missed_state_change_and_a_deleted_service_are_repaired(urls, sim):
    dropped_session(urls, "ivy-hib")
    kube.merge_patch("Session", "ivy-hib", {"spec": {"state": "hibernated"}}, NS)
    kube.delete("Service", "ss-ivy-hib", NS)
    assert ping(urls["resync"], "resync") == 200
    assert live("Deployment", "ss-ivy-hib")["spec"]["replicas"] == 0
    assert get("Service", "ss-ivy-hib") is not None
    assert live("Session", "ivy-hib")["status"]["phase"] == "Hibernated"
    assert row("ivy-hib")["state"] == "hibernated"


def test_a_lost_terminate_is_carried_out(urls, sim):
    dropped_session(urls, "ivy-term")
    kube.merge_patch("Session", "ivy-term", {"spec": {"state": "terminated"}}, NS)
    assert ping(urls["resync"], "resync") == 200
    for kind in ("Deployment", "Service", "Ingress", "NetworkPolicy"):
        assert get(kind, "ss-ivy-term") is None, kind
    assert live("Session", "ivy-term")["status"]["phase"] == "Terminated"


def test_index_rows_without_a_session_go_and_sessions_without_a_row_get_one(urls, sim):
    dropped_session(urls, "ivy-rowless")
    obj = kube.create(session_manifest("ivy-second", user="ivy"))
    obj.setdefault("kind", "Session")
    assert deliver(urls["session"], "add", obj) == 200
    kube.delete("Session", "ivy-second", NS)  # the delete event is lost
    execute("INSERT INTO sessions (namespace, name, username, template, created_at)"
            " VALUES (%s, 'ivy-young', 'ivy', 'firefox', now())", (NS,))  # the API is creating it right now
    execute("DELETE FROM sessions WHERE namespace = %s AND name = 'ivy-rowless'", (NS,))
    execute("UPDATE sessions SET created_at = now() - interval '1 hour' WHERE name = 'ivy-second'")
    assert ping(urls["resync"], "resync") == 200
    assert row("ivy-second") is None
    assert row("ivy-young") is not None  # within the grace period
    assert (row("ivy-rowless")["username"], row("ivy-rowless")["phase"]) == ("ivy", "Running")


def test_an_api_failure_answers_503(urls, sim):
    sim.inject_failure(method="GET", path_regex="/sessions$", status=500, times=1)
    try:
        assert ping(urls["resync"], "resync") == 503
    finally:
        sim.clear_failures()
    assert ping(urls["resync"], "resync") == 200


@pytest.mark.parametrize(("status", "answer"), [(403, 422), (500, 503)])
def test_a_repair_is_retried_only_when_a_retry_can_help(urls, sim, status, answer):
    """A Session whose status write RBAC refuses (403) fails the same way on every retry of the tick:
    the tick is refused (422) and the next one takes it up; a server error (500) asks for a retry
    (503). Either way the other repairs of the tick are made."""
    dropped_session(urls, f"ivy-part{status}")
    dropped_session(urls, f"ivy-other{status}")
    for name in (f"ivy-part{status}", f"ivy-other{status}"):
        kube.merge_patch("Session", name, {"spec": {"state": "hibernated"}}, NS)  # the events are lost
    sim.inject_failure(method="PATCH", path_regex=f"/sessions/ivy-part{status}/status$", status=status, times=1)
    try:
        assert ping(urls["resync"], "resync") == answer
    finally:
        sim.clear_failures()
    assert live("Session", f"ivy-other{status}")["status"]["phase"] == "Hibernated"
    assert live("Session", f"ivy-part{status}")["status"]["phase"] == "Running"
    assert ping(urls["resync"], "resync") == 200
    assert live("Session", f"ivy-part{status}")["status"]["phase"] == "Hibernated"
