"""Late events never move a Session's index row (and with it forward-auth) back to an older spec or
on to another Session of the same name.

ApiServerSource delivers events at least once, in any order, and concurrently: an event carrying a
copy of the Session from before a change the API just made (terminate) can arrive after that change.
Each test delivers the stale event itself, in the exact ApiServerSource format, at the moment that
makes the race happen, so the outcome never depends on timing."""

from __future__ import annotations

from typing import Any

import pytest

from streamspace import kube
from streamspace.db import fetch_one
from tests.conftest import client_for, desktop_cookie

from .reconcile_helpers import NS, deliver, get, live, template_manifest
from .test_auth_check import PATH, check, cookie, host


@pytest.fixture(scope="module")
def reconcile(function_url, sim):
    template = kube.create(template_manifest("firefox"))
    template.setdefault("kind", "Template")
    assert deliver(function_url("template-reconcile"), "add", template) == 200
    return function_url("session-reconcile")


@pytest.fixture(scope="module")
def api(serve, sim):
    return serve("sessions", "auth-check")


def row(name: str) -> Any:
    return fetch_one("SELECT * FROM sessions WHERE namespace = %s AND name = %s", (NS, name))


def launched(api: str, reconcile: str, username: str) -> tuple[Any, str, dict[str, Any]]:
    """(the owner's client, the session's name, the Session as its first reconcile left it: Pending),
    the session Running and its owner holding the desktop cookie."""
    owner = client_for(api, username)
    answer = owner.post("/api/v1/sessions", json={"template": "firefox"})
    assert answer.status_code == 201, answer.text
    name = answer.json()["name"]
    assert deliver(reconcile, "add", live("Session", name)) == 200
    pending = live("Session", name)
    assert pending["status"]["phase"] == "Pending"
    assert deliver(reconcile, "update", live("Deployment", f"ss-{name}")) == 200
    assert live("Session", name)["status"]["phase"] == "Running"
    return owner, name, pending


def desktop_check(api: str, name: str, value: str) -> int:
    return check(api + PATH, {**host(name), **cookie(value)})[0]


REFUSED = 401  # terminating revoked the cookie: the owner must open the desktop again (and cannot)


def test_a_late_event_from_before_terminate_never_opens_the_desktop_again(api, reconcile, sim):
    owner, name, pending = launched(api, reconcile, "lena")
    grant = desktop_cookie(owner.user_id, owner.username, name)
    assert desktop_check(api, name, grant) == 200
    assert owner.patch(f"/api/v1/sessions/{name}", json={"state": "terminated"}).status_code == 200
    assert desktop_check(api, name, grant) == REFUSED

    # The pre-PATCH copy's update event arrives after the terminate, before the terminate's own event.
    assert deliver(reconcile, "update", pending) == 200
    assert row(name)["state"] == "terminated"
    assert desktop_check(api, name, grant) == REFUSED
    assert get("Deployment", f"ss-{name}") is None, "the stale copy brought the desktop back"

    assert deliver(reconcile, "update", live("Session", name)) == 200  # the terminate's event
    assert live("Session", name)["status"]["phase"] == "Terminated"
    assert deliver(reconcile, "add", pending) == 200  # and a redelivered add, later still
    assert row(name)["state"] == "terminated"
    assert live("Session", name)["status"]["phase"] == "Terminated"
    assert desktop_check(api, name, grant) == REFUSED


def test_a_reconcile_that_read_the_session_before_terminate_cannot_write_running_after_it(api, reconcile, sim):
    """The reconcile of the pre-PATCH copy was already past its reads when the API terminated the
    session: its index write comes last and must not win."""
    from streamspace.reconcile import context

    owner, name, _ = launched(api, reconcile, "mona")
    running = live("Session", name)
    uid = running["metadata"]["uid"]
    slower = context.load_session_context(NS, name, uid, "firefox")  # the slower reconcile's view
    grant = desktop_cookie(owner.user_id, owner.username, name)
    assert owner.patch(f"/api/v1/sessions/{name}", json={"state": "terminated"}).status_code == 200
    context.write_index(slower.row, running, running["status"])
    assert row(name)["state"] == "terminated"
    assert desktop_check(api, name, grant) == REFUSED


def test_terminating_ends_the_sessions_desktop_cookies_for_good(api, reconcile, sim):
    """Whatever the index says later (a kubectl edit back to running included), a cookie issued
    before the termination never opens the desktop again."""
    owner, name, _ = launched(api, reconcile, "nora")
    grant = desktop_cookie(owner.user_id, owner.username, name)
    assert owner.patch(f"/api/v1/sessions/{name}", json={"state": "terminated"}).status_code == 200
    assert deliver(reconcile, "update", live("Session", name)) == 200
    revived = kube.merge_patch("Session", name, {"spec": {"state": "running"}}, NS)  # an operator's kubectl edit
    revived.setdefault("kind", "Session")
    assert deliver(reconcile, "update", revived) == 200
    assert row(name)["state"] == "running"
    assert desktop_check(api, name, grant) == REFUSED
