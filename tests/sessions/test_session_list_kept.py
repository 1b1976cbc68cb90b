"""GET /api/v1/sessions answers a user's own list from the answer it kept while the owner's change
mark (migration 0024) and the page's live-connection window say nothing changed. Every write that
changes a listed value must be seen by the very next list: each test here lists until the answer is
a kept one, writes, and compares the next answer byte for byte with the list as the service builds
it from the database now (no kept answer involved)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.sim.sim_helpers import eventually

from .conftest import NAMESPACE, Client, World, client_for, put_template, session_object


@pytest.fixture(scope="module", autouse=True)
def templates(world: World) -> None:
    put_template("firefox", cpu="500m", memory="512Mi")
    put_template("plain", with_defaults=False)


def _create(client: Client) -> str:
    response = client.post("/api/v1/sessions", json={"template": "firefox"})
    assert response.status_code == 201, response.text
    return str(response.json()["name"])


def _caller(client: Client) -> Any:
    from streamspace.auth.principal import Principal
    from streamspace.auth.tokens import verify_access_token

    claims = verify_access_token(client.http.headers["Authorization"].removeprefix("Bearer "))
    return Principal(client.user_id, client.username, "user", (), claims.family_id)


def _now_as_built(client: Client, **params: Any) -> bytes:
    """The list as the service builds it from the database now: what the answer must be."""
    from streamspace.encoding import dumps
    from streamspace.sessions import listing

    return dumps(listing.list_sessions(_caller(client), **params))


def _listed(client: Client, **params: Any) -> tuple[bytes, bool]:
    """(the answer's bytes, whether it was a kept answer)."""
    from streamspace.sessions import listing

    before = listing.kept_answer_count()
    response = client.get("/api/v1/sessions", params=params)
    assert response.status_code == 200, response.text
    return response.content, listing.kept_answer_count() == before + 1


def _kept(client: Client, **params: Any) -> bytes:
    """List until the answer is a kept one (the second list of an unchanged page is); its bytes."""
    _listed(client, **params)
    answer, kept = _listed(client, **params)
    assert kept, "an unchanged page was listed again without its kept answer"
    assert answer == _now_as_built(client, **params)
    return answer


def _seen_at_once(client: Client, write: Callable[[], object], **params: Any) -> dict[str, Any]:
    """Keep an answer, write, and check the very next list answers the page as it is now; the new
    page (parsed)."""
    before = _kept(client, **params)
    write()
    answer, kept = _listed(client, **params)
    assert not kept, "a list after a write was answered with the answer kept before it"
    assert answer == _now_as_built(client, **params)
    assert answer != before, "the write changed nothing listed: the test proves nothing"
    return dict(json.loads(answer))


def _session(page: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in page["sessions"] if s["name"] == name)


def _sql(statement: str, params: Any = ()) -> None:
    from streamspace.db import execute

    execute(statement, params)


@pytest.fixture()
def owner(world: World) -> Client:
    """A user of its own per test, so that a test's writes and lists concern only its own sessions."""
    import uuid

    return client_for(world.base, f"u{uuid.uuid4().hex[:10]}")


# -- writes through the API and the store --------------------------------------------------------------

def test_a_created_session_is_listed_at_once(owner: Client) -> None:
    names: list[str] = []
    page = _seen_at_once(owner, lambda: names.append(_create(owner)))
    assert [s["name"] for s in page["sessions"]] == names and page["total"] == 1


def test_a_deleted_session_leaves_the_list_at_once(owner: Client) -> None:
    name = _create(owner)
    page = _seen_at_once(owner, lambda: owner.delete(f"/api/v1/sessions/{name}"))
    assert page == {"sessions": [], "total": 0}


def test_a_state_and_tags_change_is_listed_at_once(owner: Client) -> None:
    name = _create(owner)
    page = _seen_at_once(owner, lambda: owner.patch(f"/api/v1/sessions/{name}", json={"state": "hibernated"}))
    assert _session(page, name)["state"] == "hibernated"
    page = _seen_at_once(owner, lambda: owner.patch(f"/api/v1/sessions/{name}", json={"tags": ["now"]}))
    assert _session(page, name)["tags"] == ["now"]
    page = _seen_at_once(owner, lambda: owner.patch(f"/api/v1/sessions/{name}", json={"idleTimeout": "2h"}),
                         state="hibernated")
    assert _session(page, name)["idleTimeout"] == "2h"


def test_a_status_written_by_the_reconciler_is_listed_at_once(owner: Client) -> None:
    from streamspace.db import transaction
    from streamspace.sessions import store

    name = _create(owner)

    def reconciled() -> None:
        with transaction() as conn:
            store.update_status(conn, NAMESPACE, name, {"phase": "Running", "url": "https://x.example/",
                                                        "podName": "pod-1", "message": "ready"})

    status = _session(_seen_at_once(owner, reconciled), name)["status"]
    assert (status["phase"], status["url"], status["podName"], status["message"]) == \
        ("Running", "https://x.example/", "pod-1", "ready")

    def start_expected() -> None:
        with transaction() as conn:
            store.set_expected_start(conn, NAMESPACE, name, "warm", 1.5)

    status = _session(_seen_at_once(owner, start_expected), name)["status"]
    assert (status["startKind"], status["expectedReadySeconds"]) == ("warm", 1.5)


def test_a_session_applied_on_the_cluster_with_another_template_is_listed_at_once(owner: Client) -> None:
    from streamspace.db import transaction
    from streamspace.sessions import store

    name = _create(owner)
    obj = session_object(name)
    assert obj is not None
    changed = {**obj, "metadata": {**obj["metadata"], "generation": int(obj["metadata"]["generation"]) + 1},
               "spec": {**obj["spec"], "template": "plain"}}

    def applied() -> None:
        with transaction() as conn:
            assert store.upsert_from_object(conn, changed)

    assert _session(_seen_at_once(owner, applied), name)["template"] == "plain"


def test_a_heartbeats_activity_is_listed_at_once(owner: Client) -> None:
    name = _create(owner)
    cid = owner.get(f"/api/v1/sessions/{name}/connect").json()["connectionId"]
    # an activity older than the heartbeat's resolution, so that the next beat moves it
    _sql("UPDATE sessions SET last_activity = now() - interval '1 hour' WHERE namespace = %s AND name = %s",
         (NAMESPACE, name))
    before = _session(json.loads(_kept(owner)), name)["status"]["lastActivity"]
    page = _seen_at_once(owner, lambda: owner.post(f"/api/v1/sessions/{name}/heartbeat",
                                                   params={"connectionId": cid}))
    assert _session(page, name)["status"]["lastActivity"] > before


# -- live connections ------------------------------------------------------------------------------

def test_a_connection_opened_or_closed_through_the_api_is_counted_at_once(owner: Client) -> None:
    name = _create(owner)
    cid: list[str] = []

    def connected() -> None:
        cid.append(owner.get(f"/api/v1/sessions/{name}/connect").json()["connectionId"])

    page = _seen_at_once(owner, connected)
    assert _session(page, name)["activeConnections"] == 1
    page = _seen_at_once(owner, lambda: owner.post(f"/api/v1/sessions/{name}/disconnect",
                                                   params={"connectionId": cid[0]}))
    assert _session(page, name)["activeConnections"] == 0


def test_a_connection_written_without_touching_its_session_is_counted_at_once(owner: Client, world: World) -> None:
    """The connections' own trigger marks the session's owner (not who connected: here an admin)."""
    from streamspace.db import transaction
    from streamspace.sessions import store

    name = _create(owner)
    ids: list[str] = []

    def opened() -> None:
        with transaction() as conn:
            ids.append(store.open_connection(conn, NAMESPACE, name, world.admin.user_id, "root", "10.0.0.1", "ua"))

    assert _session(_seen_at_once(owner, opened), name)["activeConnections"] == 1
    page = _seen_at_once(owner, lambda: _sql("UPDATE connections SET disconnected_at = now() WHERE id = %s", ids))
    assert _session(page, name)["activeConnections"] == 0
    opened()
    page = _seen_at_once(owner, lambda: _sql("DELETE FROM connections WHERE id = %s", (ids[-1],)))
    assert _session(page, name)["activeConnections"] == 0


def test_a_connection_that_leaves_the_heartbeat_window_is_not_counted_by_the_next_list(owner: Client) -> None:
    """A live count falls by time alone: the kept answer holds only until the page's oldest counted
    connection leaves the window."""
    from streamspace.db import fetch_one
    from streamspace.sessions import store

    name = _create(owner)
    cid = owner.get(f"/api/v1/sessions/{name}/connect").json()["connectionId"]
    # its last beat was long enough ago that it leaves the window in a few seconds (set before any
    # list keeps this page: a real last_heartbeat only moves forward)
    _sql("UPDATE connections SET last_heartbeat = now() - make_interval(secs => %s) WHERE id = %s",
         (store.heartbeat_window() - 10, cid))
    before = _kept(owner)
    assert b'"activeConnections":1' in before

    def live() -> bool:
        row = fetch_one("SELECT last_heartbeat > now() - make_interval(secs => %s) AS live FROM connections"
                        " WHERE id = %s", (store.heartbeat_window(), cid))
        return bool(row and row["live"])

    eventually(lambda: not live(), "the connection left the heartbeat window", timeout=60)
    answer, kept = _listed(owner)
    assert not kept
    assert answer == _now_as_built(owner) and b'"activeConnections":0' in answer


# -- writes behind the API's back (any SQL marks: the triggers, not the store's code) -------------------

def test_any_write_to_a_listed_column_is_listed_at_once(owner: Client) -> None:
    name = _create(owner)
    page = _seen_at_once(owner, lambda: _sql(
        "UPDATE sessions SET created_at = created_at - interval '1 day', template = 'plain', message = 'moved'"
        " WHERE namespace = %s AND name = %s", (NAMESPACE, name)))
    assert _session(page, name)["template"] == "plain" and _session(page, name)["status"]["message"] == "moved"
    renamed = name + "x"
    page = _seen_at_once(owner, lambda: _sql("UPDATE sessions SET name = %s WHERE namespace = %s AND name = %s",
                                             (renamed, NAMESPACE, name)))
    assert [s["name"] for s in page["sessions"]] == [renamed]


def test_a_session_that_changes_owner_leaves_one_list_and_joins_the_other_at_once(owner: Client,
                                                                                 world: World) -> None:
    import uuid

    other = client_for(world.base, f"u{uuid.uuid4().hex[:10]}")
    name = _create(owner)
    _create(other)
    _kept(other)  # the new owner's answer is kept too: its mark must move as well
    page = _seen_at_once(owner, lambda: _sql(
        "UPDATE sessions SET user_id = %s, username = %s WHERE namespace = %s AND name = %s",
        (other.user_id, other.username, NAMESPACE, name)))
    assert page == {"sessions": [], "total": 0}
    answer, kept = _listed(other)
    assert not kept and answer == _now_as_built(other) and name.encode() in answer


def test_a_write_that_rolls_back_keeps_the_answer(owner: Client) -> None:
    """Marks are written with the change, at commit: nothing committed, nothing to answer anew."""
    import psycopg2.errors

    from streamspace.db import transaction

    name = _create(owner)
    before = _kept(owner)
    with pytest.raises(psycopg2.errors.RaiseException), transaction() as conn:
        conn.execute("UPDATE sessions SET message = 'never' WHERE namespace = %s AND name = %s", (NAMESPACE, name))
        conn.execute("DO $$ BEGIN RAISE EXCEPTION 'roll back'; END $$")
    answer, kept = _listed(owner)
    assert kept and answer == before == _now_as_built(owner)


def test_an_answer_that_replaces_the_same_questions_earlier_one_is_counted_at_its_own_size(owner: Client) -> None:
    """The kept answers are bounded by their bytes: the count is what is kept, so an answer made
    anew after a write replaces the earlier answer's size, it is not added to it."""
    from streamspace.sessions import listing

    page = _seen_at_once(owner, lambda: _create(owner))  # the same question's answer, made anew and kept
    assert page["total"] >= 1
    kept_now = listing._answers  # (the process's kept answers, read as the count must see them)
    assert listing.kept_answers_size() == sum(len(answer) for _, answer in kept_now.values())


# -- who is answered a kept answer -----------------------------------------------------------------

def test_a_kept_answer_is_one_statement_and_never_outlives_the_callers_standing(owner: Client) -> None:
    from streamspace.db import statement_count

    _create(owner)
    _kept(owner)
    before = statement_count()
    _, kept = _listed(owner)
    assert kept and statement_count() - before == 1
    _sql("UPDATE users SET active = false WHERE id = %s", (owner.user_id,))
    refused = owner.get("/api/v1/sessions")
    assert refused.status_code == 403 and refused.json()["error"] == "account disabled"
    _sql("UPDATE users SET active = true WHERE id = %s", (owner.user_id,))
    _sql("UPDATE token_families SET revoked_at = now() WHERE user_id = %s", (owner.user_id,))
    revoked = owner.get("/api/v1/sessions")
    assert revoked.status_code == 401 and revoked.json()["error"] == "token revoked"


def test_a_promoted_caller_is_answered_everyones_sessions_not_its_kept_own(owner: Client, world: World) -> None:
    others = _create(world.bob)
    _create(owner)
    _kept(owner)
    _sql("UPDATE users SET role = 'admin' WHERE id = %s", (owner.user_id,))
    answer, kept = _listed(owner)
    assert not kept and others.encode() in answer
    _sql("UPDATE users SET role = 'user' WHERE id = %s", (owner.user_id,))
    world.bob.delete(f"/api/v1/sessions/{others}")


def test_an_admins_list_of_everyone_is_never_kept(world: World) -> None:
    for _ in range(3):
        assert not _listed(world.admin)[1]
