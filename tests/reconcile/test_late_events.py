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
from tests.sim.sim_helpers import eventually

from .reconcile_helpers import NS, add_template, deliver, get, live, owned_specs, session_manifest
from .test_auth_check import PATH, check, cookie, host


@pytest.fixture(scope="module")
def reconcile(function_url, sim, firefox):
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
    from streamspace.reconcile import index

    owner, name, _ = launched(api, reconcile, "mona")
    running = live("Session", name)
    uid = running["metadata"]["uid"]
    slower = index.load_session_context(NS, name, uid, "firefox")  # the slower reconcile's view
    grant = desktop_cookie(owner.user_id, owner.username, name)
    assert owner.patch(f"/api/v1/sessions/{name}", json={"state": "terminated"}).status_code == 200
    index.write_index(slower.row, running, running["status"])
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


# -- another Session of the same name ---------------------------------------------------------------

def _recreated(reconcile: str, name: str, user: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the first Session as its reconcile left it, the second one of the same name, reconciled):
    the first was deleted and its delete event is still on its way."""
    first = kube.create(session_manifest(name, user=user))
    first.setdefault("kind", "Session")
    assert deliver(reconcile, "add", first) == 200
    earlier = live("Session", name)
    kube.delete("Session", name, NS)
    for kind in ("Deployment", "Service", "Ingress", "NetworkPolicy"):
        eventually(lambda kind=kind: get(kind, f"ss-{name}") is None, f"the first Session's {kind} is collected")
    second = kube.create(session_manifest(name, user=user, state="hibernated"))
    second.setdefault("kind", "Session")
    assert deliver(reconcile, "add", second) == 200
    assert live("Session", name)["status"]["phase"] == "Hibernated"
    return earlier, live("Session", name)


def _untouched(name: str, successor: dict[str, Any], objects: dict[str, Any]) -> None:
    now = live("Session", name)
    assert now["metadata"]["uid"] == successor["metadata"]["uid"]
    assert now["status"] == successor["status"], "the earlier Session's status was written onto its successor"
    indexed = row(name)
    assert indexed is not None, "the successor's index row was removed"
    assert (indexed["uid"], indexed["state"], indexed["phase"]) == (successor["metadata"]["uid"], "hibernated",
                                                                    "Hibernated")
    assert owned_specs(name) == objects


def test_a_reconcile_of_a_deleted_session_never_writes_onto_its_successor_of_the_same_name(reconcile, sim):
    """A Deployment event made a reconcile read the Session just before it was deleted and another
    one of the same name was created and reconciled: that reconcile, finishing last, must touch
    neither the new Session's status, nor its index row, nor its objects."""
    from streamspace.reconcile.session import Source, reconcile_session

    earlier, successor = _recreated(reconcile, "olga-again", "olga")
    objects = owned_specs("olga-again")
    assert reconcile_session(earlier, source=Source.READ) in ("ignored", "reconciled")
    _untouched("olga-again", successor, objects)
    for action in ("add", "update", "delete"):  # and its late events, in the ApiServerSource format
        assert deliver(reconcile, action, earlier) == 200
    _untouched("olga-again", successor, objects)


def test_a_status_write_is_refused_on_a_session_recreated_since_it_was_read(reconcile, sim):
    """The status subresource ignores a uid in a PATCH (the custom resource status strategy copies
    the stored object first): the reconcile's status write carries the resourceVersion of the copy
    it reconciled, which no recreated Session has."""
    earlier, successor = _recreated(reconcile, "pia-again", "pia")
    status = {**earlier["status"], "phase": "Running", "message": "from the earlier Session"}
    with pytest.raises(kube.KubeError) as refused:
        kube.apply_status("Session", "pia-again", NS, status, resource_version=earlier["metadata"]["resourceVersion"])
    assert refused.value.conflict
    assert live("Session", "pia-again")["status"] == successor["status"]


def test_index_writes_and_forgets_of_an_earlier_session_leave_its_successors_row(reconcile, sim):
    """Index writes are keyed by the Session's uid: a late write or forget of the earlier Session
    (its reconcile loaded the index before the successor existed) changes nothing of the successor's
    row, even while the successor's row is still the API's reservation without a uid."""
    from streamspace.db import execute
    from streamspace.reconcile import index

    earlier, successor = _recreated(reconcile, "rita-again", "rita")
    uid = earlier["metadata"]["uid"]
    slower = index.load_session_context(NS, "rita-again", successor["metadata"]["uid"], "firefox")
    slower_row = {**(slower.row or {}), "uid": uid}  # as loaded while the row was still the earlier one's
    objects = owned_specs("rita-again")
    assert index.write_index(slower_row, earlier, {**earlier["status"], "phase": "Running"}) is False
    _untouched("rita-again", successor, objects)
    execute("UPDATE sessions SET uid = NULL WHERE namespace = %s AND name = %s", (NS, "rita-again"))
    index.forget_session(NS, "rita-again", uid)
    assert row("rita-again") is not None, "the earlier Session's forget removed the successor's reservation"


# -- Templates: what every new session of the template is built from ------------------------------

def template_row(name: str) -> Any:
    return fetch_one("SELECT * FROM template_index WHERE namespace = %s AND name = %s", (NS, name))


def test_an_older_copy_of_a_template_never_moves_its_index_back(function_url, sim):
    """New sessions are built from the template index: a copy from before an admin's change (a
    resync's list taken before it, a late event) must not bring the older spec back into it."""
    from streamspace.reconcile.template import reconcile_template

    url = function_url("template-reconcile")
    add_template(url, "gimp-late", image="example.org/gimp:2.10-vulnerable")
    older = live("Template", "gimp-late")
    patched = kube.merge_patch("Template", "gimp-late", {"spec": {"baseImage": "example.org/gimp:2.10.38"}}, NS)
    patched.setdefault("kind", "Template")
    assert deliver(url, "update", patched) == 200
    assert template_row("gimp-late")["spec"]["baseImage"] == "example.org/gimp:2.10.38"

    reconcile_template(older, action="read")  # a resync that listed the Templates before the change
    assert deliver(url, "update", older) == 200  # and the older copy's event, late
    assert template_row("gimp-late")["spec"]["baseImage"] == "example.org/gimp:2.10.38"
    assert template_row("gimp-late")["generation"] == patched["metadata"]["generation"]


def test_a_deleted_templates_late_event_never_replaces_its_successor_of_the_same_name(function_url, sim):
    url = function_url("template-reconcile")
    add_template(url, "inkscape-again", image="example.org/inkscape:old")
    earlier = kube.merge_patch("Template", "inkscape-again", {"spec": {"displayName": "Old Inkscape"}}, NS)
    earlier.setdefault("kind", "Template")  # generation 2: newer-looking than its successor's 1
    kube.delete("Template", "inkscape-again", NS)  # its events are still on their way
    second = add_template(url, "inkscape-again", image="example.org/inkscape:new")
    assert deliver(url, "update", earlier) == 200
    indexed = template_row("inkscape-again")
    assert (indexed["uid"], indexed["spec"]["baseImage"]) == (second["metadata"]["uid"], "example.org/inkscape:new")
    assert live("Template", "inkscape-again")["status"]["observedGeneration"] == 1
    assert deliver(url, "delete", earlier) == 200
    assert template_row("inkscape-again")["uid"] == second["metadata"]["uid"]
