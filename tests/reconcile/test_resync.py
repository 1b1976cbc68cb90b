"""resync over real HTTP (PingSource events): whatever the event stream missed is repaired."""

from __future__ import annotations

from typing import Any

import pytest

from streamspace import kube
from streamspace.db import execute, fetch_one

from .reconcile_helpers import NS, deliver, get, live, ping, session_manifest, template_manifest, writes


@pytest.fixture(scope="module")
def urls(function_url, sim):
    return {"resync": function_url("resync"), "session": function_url("session-reconcile")}


def row(name: str) -> Any:
    return fetch_one("SELECT * FROM sessions WHERE namespace = %s AND name = %s", (NS, name))


def test_objects_created_while_no_event_was_delivered_are_reconciled(urls, sim):
    kube.create(template_manifest("firefox"))  # no Template event
    kube.create(session_manifest("ivy-dropped", user="ivy"))  # no Session event either
    assert ping(urls["resync"], "resync") == 200
    template = live("Template", "firefox")
    assert template["status"]["phase"] == "Ready"
    session = live("Session", "ivy-dropped")
    assert session["status"]["observedGeneration"] == session["metadata"]["generation"]
    for kind in ("Deployment", "Service", "Ingress", "NetworkPolicy"):
        assert get(kind, "ss-ivy-dropped") is not None, kind
    assert row("ivy-dropped")["username"] == "ivy"
    assert ping(urls["resync"], "resync") == 200  # the pod is Ready by now: Running (a missed Deployment event)
    assert live("Session", "ivy-dropped")["status"]["phase"] == "Running"


def test_a_resync_of_a_converged_namespace_writes_nothing(urls, sim):
    sim.clear_requests()
    assert ping(urls["resync"], "resync") == 200
    log = sim.requests
    assert not writes(log), log
    assert len(log) <= 8, log  # lists: Templates, Sessions, 4 owned kinds, claims, pods


def test_a_missed_state_change_and_a_deleted_service_are_repaired(urls, sim):
    kube.merge_patch("Session", "ivy-dropped", {"spec": {"state": "hibernated"}}, NS)
    kube.delete("Service", "ss-ivy-dropped", NS)
    assert ping(urls["resync"], "resync") == 200
    assert live("Deployment", "ss-ivy-dropped")["spec"]["replicas"] == 0
    assert get("Service", "ss-ivy-dropped") is not None
    assert live("Session", "ivy-dropped")["status"]["phase"] == "Hibernated"
    assert row("ivy-dropped")["state"] == "hibernated"


def test_a_lost_terminate_is_carried_out(urls, sim):
    kube.merge_patch("Session", "ivy-dropped", {"spec": {"state": "terminated"}}, NS)
    assert ping(urls["resync"], "resync") == 200
    for kind in ("Deployment", "Service", "Ingress", "NetworkPolicy"):
        assert get(kind, "ss-ivy-dropped") is None, kind
    assert live("Session", "ivy-dropped")["status"]["phase"] == "Terminated"


def test_index_rows_without_a_session_go_and_sessions_without_a_row_get_one(urls, sim):
    obj = kube.create(session_manifest("ivy-second", user="ivy"))
    obj.setdefault("kind", "Session")
    assert deliver(urls["session"], "add", obj) == 200
    kube.delete("Session", "ivy-second", NS)  # the delete event is lost
    execute("INSERT INTO sessions (namespace, name, username, template, created_at)"
            " VALUES (%s, 'ivy-young', 'ivy', 'firefox', now())", (NS,))  # the API is creating it right now
    execute("DELETE FROM sessions WHERE namespace = %s AND name = 'ivy-dropped'", (NS,))
    execute("UPDATE sessions SET created_at = now() - interval '1 hour' WHERE name = 'ivy-second'")
    assert ping(urls["resync"], "resync") == 200
    assert row("ivy-second") is None
    assert row("ivy-young") is not None  # within the grace period
    assert row("ivy-dropped")["phase"] == "Terminated"


def test_an_api_failure_answers_503(urls, sim):
    sim.inject_failure(method="GET", path_regex="/sessions$", status=500, times=1)
    try:
        assert ping(urls["resync"], "resync") == 503
    finally:
        sim.clear_failures()
    assert ping(urls["resync"], "resync") == 200
