"""The sessions function end to end: real HTTP, real Postgres, the simulated API server."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from .conftest import (
    NAMESPACE,
    World,
    index_row,
    put_template,
    session_object,
    set_session_status,
)


@pytest.fixture(scope="module", autouse=True)
def templates(world: World) -> None:
    put_template("firefox", cpu="500m", memory="512Mi")
    put_template("plain", with_defaults=False)  # falls back to the configured defaults
    put_template("fresh", phase=None)  # template-reconcile has not written a status yet
    put_template("broken", phase="Invalid", message="spec.baseImage: cannot be pulled")


def create(client: Any, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/sessions", json={"template": "firefox", **body})
    assert response.status_code == 201, response.text
    return response.json()


# -- the whole lifecycle ------------------------------------------------------------------------------

def test_full_lifecycle(world: World, sim: Any) -> None:
    alice = world.alice
    created = create(alice, tags=["work"], idleTimeout="90m")
    name = created["name"]
    assert re.fullmatch(r"alice-firefox-[a-z0-9]{6}", name)
    assert created["user"] == "alice" and created["template"] == "firefox" and created["state"] == "running"
    assert created["namespace"] == NAMESPACE
    both = {"memory": "512Mi", "cpu": "500m"}
    assert created["resources"] == {**both, "requests": both, "limits": both}
    assert created["idleTimeout"] == "1h30m" and created["maxSessionDuration"] == "8h"
    assert created["persistentHome"] is True and created["tags"] == ["work"]
    assert created["status"]["phase"] == "Pending" and created["activeConnections"] == 0

    obj = session_object(name)
    assert obj is not None
    assert obj["metadata"]["labels"] == {"stream.space/user": "alice", "stream.space/template": "firefox"}
    assert obj["spec"]["resources"]["limits"] == {"cpu": "500m", "memory": "512Mi"}
    row = index_row(name)
    assert row is not None and row["state"] == "running" and row["cpu_millis"] == 500
    assert row["memory_bytes"] == 512 * 2**20 and row["uid"] == obj["metadata"]["uid"]

    listing = alice.get("/api/v1/sessions").json()
    assert listing["total"] == 1 and [s["name"] for s in listing["sessions"]] == [name]
    assert listing["sessions"][0]["resources"] == created["resources"]
    assert listing["sessions"][0]["idleTimeout"] == "1h30m"

    url = f"https://{name}.streamspace.local/"
    set_session_status(name, phase="Running", url=url, podName=f"ss-{name}-abc")
    got = alice.get(f"/api/v1/sessions/{name}").json()
    assert got["status"]["phase"] == "Running" and got["status"]["url"] == url
    assert got["status"]["lastActivity"] is not None

    # hibernate: the Session's spec changes, the index follows
    hibernated = alice.patch(f"/api/v1/sessions/{name}", json={"state": "hibernated"})
    assert hibernated.status_code == 200, hibernated.text
    assert hibernated.json()["state"] == "hibernated"
    assert session_object(name)["spec"]["state"] == "hibernated"  # type: ignore[index]
    assert index_row(name)["state"] == "hibernated"  # type: ignore[index]

    # connect wakes it
    connected = alice.get(f"/api/v1/sessions/{name}/connect", headers={"User-Agent": "pytest-browser"})
    assert connected.status_code == 200, connected.text
    body = connected.json()
    assert set(body) == {"connectionId", "sessionUrl", "openUrl", "state", "message"}
    assert body["openUrl"].startswith(f"https://{name}.streamspace.local/.streamspace/auth?ticket=")
    assert body["state"] == "running" and body["sessionUrl"] == url and "wak" in body["message"]
    assert session_object(name)["spec"]["state"] == "running"  # type: ignore[index]
    assert index_row(name)["state"] == "running"  # type: ignore[index]
    cid = body["connectionId"]

    beat = alice.post(f"/api/v1/sessions/{name}/heartbeat", params={"connectionId": cid})
    assert beat.status_code == 200 and beat.json() == {"status": "ok"}
    assert alice.get(f"/api/v1/sessions/{name}").json()["activeConnections"] == 1
    assert alice.get("/api/v1/sessions").json()["sessions"][0]["activeConnections"] == 1
    connections = alice.get(f"/api/v1/sessions/{name}/connections").json()
    assert connections["total"] == 1
    assert connections["connections"][0]["id"] == cid
    assert connections["connections"][0]["user"] == "alice"
    assert connections["connections"][0]["userAgent"] == "pytest-browser"
    assert set(connections["connections"][0]) == {"id", "user", "clientIp", "userAgent", "connectedAt",
                                                  "lastHeartbeat"}

    gone = alice.post(f"/api/v1/sessions/{name}/disconnect", params={"connectionId": cid})
    assert gone.status_code == 200 and gone.json()["activeConnections"] == 0
    assert alice.post(f"/api/v1/sessions/{name}/disconnect", params={"connectionId": cid}).status_code == 404
    assert alice.post(f"/api/v1/sessions/{name}/heartbeat", params={"connectionId": cid}).status_code == 404

    # terminate keeps the Session (reconcile moves it to Terminated) and releases the quota
    terminated = alice.patch(f"/api/v1/sessions/{name}", json={"state": "terminated"})
    assert terminated.status_code == 200 and terminated.json()["state"] == "terminated"
    assert session_object(name)["spec"]["state"] == "terminated"  # type: ignore[index]
    assert index_row(name)["state"] == "terminated"  # type: ignore[index]
    assert alice.patch(f"/api/v1/sessions/{name}", json={"state": "running"}).status_code == 409
    assert alice.get(f"/api/v1/sessions/{name}/connect").status_code == 409
    assert alice.get("/api/v1/sessions", params={"state": "terminated"}).json()["total"] == 1
    assert alice.get("/api/v1/sessions", params={"state": "running"}).json()["total"] == 0

    deleted = alice.delete(f"/api/v1/sessions/{name}")
    assert deleted.status_code == 200 and "message" in deleted.json()
    assert session_object(name) is None and index_row(name) is None
    assert alice.get(f"/api/v1/sessions/{name}").status_code == 404
    assert alice.get("/api/v1/sessions").json() == {"sessions": [], "total": 0}


def test_connect_resets_activity_so_the_idle_sweep_waits(world: World) -> None:
    from streamspace.db import execute

    name = create(world.alice)["name"]
    world.alice.patch(f"/api/v1/sessions/{name}", json={"state": "hibernated"})
    execute("UPDATE sessions SET last_activity = now() - interval '3 hours' WHERE name = %s", (name,))
    assert world.alice.get(f"/api/v1/sessions/{name}/connect").status_code == 200
    row = index_row(name)
    assert row is not None and row["state"] == "running"
    fresh = execute("SELECT 1 FROM sessions WHERE name = %s AND last_activity > now() - interval '1 minute'", (name,))
    assert fresh == 1
    world.alice.delete(f"/api/v1/sessions/{name}")


def test_patch_settings_and_refusals(world: World) -> None:
    alice = world.alice
    name = create(alice)["name"]
    changed = alice.patch(f"/api/v1/sessions/{name}", json={"idleTimeout": "2h", "maxSessionDuration": "0",
                                                            "tags": ["a", "b"]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["idleTimeout"] == "2h" and changed.json()["maxSessionDuration"] == "0"
    spec = session_object(name)["spec"]  # type: ignore[index]
    assert spec["idleTimeout"] == "2h" and spec["maxSessionDuration"] == "0" and spec["tags"] == ["a", "b"]
    row = index_row(name)
    assert row["idle_timeout_seconds"] == 7200 and row["max_duration_seconds"] == 0  # type: ignore[index]
    listed = alice.get("/api/v1/sessions").json()["sessions"][0]
    assert listed["tags"] == ["a", "b"] and listed["idleTimeout"] == "2h"

    bad_state = alice.patch(f"/api/v1/sessions/{name}", json={"state": "paused"})
    assert bad_state.status_code == 400 and bad_state.json()["error"] == "invalid state"
    assert "running" in bad_state.json()["message"]
    bad_duration = alice.patch(f"/api/v1/sessions/{name}", json={"idleTimeout": "soon"})
    assert bad_duration.status_code == 400 and bad_duration.json()["error"] == "invalid idleTimeout"
    unknown = alice.patch(f"/api/v1/sessions/{name}", json={"persistentHome": False})
    assert unknown.status_code == 400 and "persistentHome" in unknown.json()["message"]
    assert alice.patch(f"/api/v1/sessions/{name}", json={}).status_code == 400
    assert alice.patch("/api/v1/sessions/nope-nope-123456", json={"state": "running"}).status_code == 404
    alice.delete(f"/api/v1/sessions/{name}")


# -- bad input ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "error", "hint"), [
    ({"template": "no-such-template"}, "invalid template", "no-such-template"),
    ({"template": "Bad Name!"}, "invalid template", "DNS-1123"),
    ({"template": "broken"}, "invalid template", "Invalid"),
    ({"template": "firefox", "idleTimeout": "ten minutes"}, "invalid idleTimeout", "30m"),
    ({"template": "firefox", "maxSessionDuration": "-1h"}, "invalid maxSessionDuration", "2h"),
    ({"template": "firefox", "resources": {"memory": "lots"}}, "invalid resources.memory", "2Gi"),
    ({"template": "firefox", "resources": {"cpu": "-1"}}, "invalid resources.cpu", "negative"),
    ({"template": "firefox", "resources": {"gpu": "1"}}, "invalid resources.gpu", "unknown field"),
    ({"template": "firefox", "persistentHome": "yes"}, "invalid persistentHome", "true or false"),
    ({"template": "firefox", "tags": "x"}, "invalid tags", "list"),
    ({"template": "firefox", "owner": "bob"}, "invalid owner", "unknown field"),
    ({}, "invalid template", "required"),
])
def test_create_refuses_bad_input(world: World, body: dict[str, Any], error: str, hint: str) -> None:
    response = world.alice.post("/api/v1/sessions", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error
    assert hint in response.json()["message"]
    assert world.alice.get("/api/v1/sessions").json()["total"] == 0


def test_resources_come_from_request_then_template_then_config(world: World) -> None:
    alice = world.alice
    requested = create(alice, resources={"memory": "1Gi"})  # cpu from the template
    assert requested["resources"]["limits"] == {"memory": "1Gi", "cpu": "500m"}
    plain = alice.post("/api/v1/sessions", json={"template": "plain"})
    assert plain.status_code == 201, plain.text
    assert plain.json()["resources"]["limits"] == {"memory": "2Gi", "cpu": "1"}  # configured 2Gi / 1000m
    changed = world.admin.patch("/api/v1/config", json={"resources.defaultMemory": "768Mi"})
    assert changed.status_code == 200, changed.text
    plain2 = alice.post("/api/v1/sessions", json={"template": "plain"}).json()
    assert plain2["resources"]["memory"] == "768Mi"
    world.admin.patch("/api/v1/config", json={"resources.defaultMemory": "2Gi"})
    for name in (requested["name"], plain.json()["name"], plain2["name"]):
        assert alice.delete(f"/api/v1/sessions/{name}").status_code == 200


def test_template_without_status_is_accepted_when_its_spec_validates(world: World) -> None:
    created = world.alice.post("/api/v1/sessions", json={"template": "fresh"})
    assert created.status_code == 201, created.text
    world.alice.delete(f"/api/v1/sessions/{created.json()['name']}")


def test_only_admins_create_for_someone_else(world: World) -> None:
    refused = world.alice.post("/api/v1/sessions", json={"template": "firefox", "user": "bob"})
    assert refused.status_code == 403
    unknown = world.admin.post("/api/v1/sessions", json={"template": "firefox", "user": "nobody"})
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid user"
    made = world.admin.post("/api/v1/sessions", json={"template": "firefox", "user": "bob"})
    assert made.status_code == 201, made.text
    name = made.json()["name"]
    assert name.startswith("bob-firefox-") and made.json()["user"] == "bob"
    assert [s["name"] for s in world.bob.get("/api/v1/sessions").json()["sessions"]] == [name]
    assert world.bob.delete(f"/api/v1/sessions/{name}").status_code == 200


def test_requests_need_a_token(world: World) -> None:
    assert world.anonymous.get("/api/v1/sessions").status_code == 401
    assert world.anonymous.post("/api/v1/sessions", json={"template": "firefox"}).status_code == 401
    assert world.anonymous.post("/api/v1/sessions/x/heartbeat", params={"connectionId": "y"}).status_code == 401


# -- isolation ----------------------------------------------------------------------------------------

def test_users_are_isolated(world: World) -> None:
    alice, bob, admin = world.alice, world.bob, world.admin
    name = create(alice)["name"]
    cid = alice.get(f"/api/v1/sessions/{name}/connect").json()["connectionId"]
    base = f"/api/v1/sessions/{name}"
    assert bob.get(base).status_code == 404
    assert bob.get(base).json()["error"] == "not found"
    assert bob.patch(base, json={"state": "hibernated"}).status_code == 404
    assert bob.delete(base).status_code == 404
    assert bob.get(base + "/connect").status_code == 404
    assert bob.get(base + "/connections").status_code == 404
    assert bob.post(base + "/heartbeat", params={"connectionId": cid}).status_code == 404
    assert bob.post(base + "/disconnect", params={"connectionId": cid}).status_code == 404
    assert bob.get("/api/v1/sessions").json()["total"] == 0
    assert bob.get("/api/v1/sessions", params={"user": "alice"}).status_code == 403
    # nothing changed
    assert session_object(name)["spec"]["state"] == "running"  # type: ignore[index]
    assert alice.get(base).json()["activeConnections"] == 1

    # an admin reaches everything
    assert admin.get(base).status_code == 200
    assert [s["name"] for s in admin.get("/api/v1/sessions", params={"user": "alice"}).json()["sessions"]] == [name]
    assert admin.get("/api/v1/sessions", params={"user": "bob"}).json()["total"] == 0
    assert admin.post(base + "/heartbeat", params={"connectionId": cid}).status_code == 200
    assert admin.delete(base).status_code == 200


def test_heartbeat_edge_cases(world: World) -> None:
    from streamspace.db import execute

    alice = world.alice
    name = create(alice)["name"]
    base = f"/api/v1/sessions/{name}"
    assert alice.post(base + "/heartbeat").status_code == 400
    assert alice.post(base + "/heartbeat", params={"connectionId": "not-a-uuid"}).json()["error"] == \
        "invalid connectionId"
    unknown = alice.post(base + "/heartbeat", params={"connectionId": "00000000-0000-0000-0000-000000000000"})
    assert unknown.status_code == 404
    cid = alice.get(base + "/connect").json()["connectionId"]
    # a connection from another session of the same user does not beat for this one
    other = create(alice)["name"]
    assert alice.post(f"/api/v1/sessions/{other}/heartbeat", params={"connectionId": cid}).status_code == 404
    # a connection silent for longer than the heartbeat window counts as gone
    execute("UPDATE connections SET last_heartbeat = now() - interval '5 minutes' WHERE id = %s", (cid,))
    assert alice.get(base).json()["activeConnections"] == 0
    assert alice.get(base + "/connections").json()["total"] == 0
    assert alice.post(base + "/heartbeat", params={"connectionId": cid}).status_code == 404
    alice.delete(base)
    alice.delete(f"/api/v1/sessions/{other}")


def test_heartbeat_and_list_make_no_kubernetes_call(world: World, sim: Any) -> None:
    name = create(world.alice)["name"]
    cid = world.alice.get(f"/api/v1/sessions/{name}/connect").json()["connectionId"]
    kube_before = len(sim.requests)
    assert world.alice.post(f"/api/v1/sessions/{name}/heartbeat", params={"connectionId": cid}).status_code == 200
    assert len(sim.requests) == kube_before
    kube_before = len(sim.requests)
    assert world.alice.get("/api/v1/sessions").status_code == 200
    assert len(sim.requests) == kube_before  # lists come from the index
    world.alice.delete(f"/api/v1/sessions/{name}")


def test_pagination_and_filters(world: World) -> None:
    alice = world.alice
    names = [create(alice)["name"] for _ in range(3)]
    plain = alice.post("/api/v1/sessions", json={"template": "plain"}).json()["name"]
    page = alice.get("/api/v1/sessions", params={"limit": 2, "offset": 0}).json()
    assert page["total"] == 4 and len(page["sessions"]) == 2
    beyond = alice.get("/api/v1/sessions", params={"limit": 2, "offset": 10}).json()
    assert beyond == {"sessions": [], "total": 4}
    assert alice.get("/api/v1/sessions", params={"template": "plain"}).json()["total"] == 1
    assert alice.get("/api/v1/sessions", params={"state": "bogus"}).status_code == 400
    assert alice.get("/api/v1/sessions", params={"limit": 5000}).status_code == 400
    for name in [*names, plain]:
        alice.delete(f"/api/v1/sessions/{name}")


# -- nothing half-created -----------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "expected"), [(500, 503), (409, 409), (403, 500)])
def test_kubernetes_failure_at_create_leaves_nothing(world: World, sim: Any, status: int, expected: int) -> None:
    from streamspace.db import fetch_one

    sim.inject_failure(method="POST", path_regex=r"/sessions$", status=status)
    try:
        response = world.alice.post("/api/v1/sessions", json={"template": "firefox"})
    finally:
        sim.clear_failures()
    assert response.status_code == expected, response.text
    assert "Traceback" not in response.text
    if status == 403:  # RBAC refuses our service account: said as such, never "cluster unavailable"
        assert response.json()["error"] == "cluster refused"
        assert "403" in response.json()["message"] and "RBAC" in response.json()["message"]
    held = fetch_one("SELECT count(*) AS n FROM sessions WHERE user_id = %s", (world.alice.user_id,))
    assert held is not None and held["n"] == 0
    assert world.alice.get("/api/v1/sessions").json()["total"] == 0
    from streamspace import kube

    assert kube.list_objects("Session", NAMESPACE, label_selector="stream.space/user=alice") == []
    # and the reservation is really gone: the next create works
    name = create(world.alice)["name"]
    world.alice.delete(f"/api/v1/sessions/{name}")


def test_home_volume_is_charged_once_per_user(world: World) -> None:
    from streamspace.db import fetch_all

    first = create(world.alice)["name"]
    second = create(world.alice)["name"]
    ephemeral = create(world.alice, persistentHome=False)["name"]

    def charges() -> dict[str, int]:
        rows = fetch_all("SELECT name, storage_bytes FROM sessions WHERE user_id = %s", (world.alice.user_id,))
        return {r["name"]: r["storage_bytes"] for r in rows}

    assert charges() == {first: 50 * 2**30, second: 0, ephemeral: 0}
    world.alice.delete(f"/api/v1/sessions/{first}")
    assert charges() == {second: 50 * 2**30, ephemeral: 0}
    world.alice.patch(f"/api/v1/sessions/{second}", json={"state": "terminated"})
    assert charges() == {second: 0, ephemeral: 0}
    for name in (second, ephemeral):
        world.alice.delete(f"/api/v1/sessions/{name}")


def test_a_home_kept_as_an_s3_profile_reserves_no_volume(world: World) -> None:
    """HOME_STORAGE=s3: the home is an emptyDir restored from the profile, whose saved bytes count
    against the storage quota when they are saved (tests/storage); there is no volume to reserve."""
    from streamspace.db import fetch_one
    from tests.conftest import environment

    with environment(HOME_STORAGE="s3", S3_BUCKET="profiles"):
        name = create(world.alice)["name"]
    row = fetch_one("SELECT storage_bytes, persistent_home FROM sessions WHERE name = %s", (name,))
    assert row is not None and (row["storage_bytes"], row["persistent_home"]) == (0, True)
    world.alice.delete(f"/api/v1/sessions/{name}")


def test_the_session_body_shows_requests_and_limits_and_v02_clients_still_read_the_limits(world: World) -> None:
    """Issue 17: what the scheduler reserves (requests) and the ceiling (limits), in the created
    body, the single read and the list (served from the index alone); the flat keys v0.2 clients
    read stay the limits."""
    wanted = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    created = create(world.alice, resources=wanted)
    expected = {"memory": "1Gi", "cpu": "1", **wanted}
    assert created["resources"] == expected
    row = index_row(created["name"])
    assert row is not None and (row["cpu_request_millis"], row["memory_request_bytes"]) == (250, 256 * 2**20)
    assert world.alice.get(f"/api/v1/sessions/{created['name']}").json()["resources"] == expected
    listed = world.alice.get("/api/v1/sessions").json()["sessions"]
    assert [s["resources"] for s in listed if s["name"] == created["name"]] == [expected]
    only_request = create(world.alice, resources={"requests": {"memory": "768Mi"}})
    assert only_request["resources"]["requests"]["memory"] == only_request["resources"]["limits"]["memory"] == "768Mi"
    too_much = world.alice.post("/api/v1/sessions", json={"template": "firefox", "resources": {
        "requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}})
    assert too_much.status_code == 400 and "exceeds the limit" in too_much.json()["message"]
    for name in (created["name"], only_request["name"]):
        assert world.alice.delete(f"/api/v1/sessions/{name}").status_code == 200


def test_session_applied_with_kubectl_is_indexed_on_first_access(world: World) -> None:
    from streamspace import kube
    from streamspace.domain.sessions import session_manifest

    manifest = session_manifest("alice-manual-1", NAMESPACE, "alice", "firefox",
                                resources={"cpu": "250m", "memory": "256Mi"})
    kube.create(manifest)
    assert world.bob.get("/api/v1/sessions/alice-manual-1").status_code == 404
    got = world.alice.get("/api/v1/sessions/alice-manual-1")
    assert got.status_code == 200, got.text
    row = index_row("alice-manual-1")
    assert row is not None and str(row["user_id"]) == world.alice.user_id and row["cpu_millis"] == 250
    short_form = {"memory": "256Mi", "cpu": "250m"}  # the short form is both request and limit
    assert got.json()["resources"] == {**short_form, "requests": short_form, "limits": short_form}
    assert world.alice.delete("/api/v1/sessions/alice-manual-1").status_code == 200


# -- live updates -------------------------------------------------------------------------------------

def test_heartbeat_authenticates_like_every_other_route(world: World) -> None:
    """The hot path goes through the same caller check as every route: revoked and disabled refused."""
    import requests

    from streamspace.auth.tokens import issue_access_token
    from streamspace.db import execute, fetch_one
    from tests.conftest import make_user, token_for

    carol_id = make_user("carol")
    carol_token = token_for(carol_id, "carol")
    family = fetch_one("INSERT INTO token_families (user_id) VALUES (%s) RETURNING id::text AS id", (carol_id,))
    assert family is not None
    family_token, _ = issue_access_token(user_id=carol_id, username="carol", role="user", groups=[],
                                         family_id=family["id"])
    carol = requests.Session()
    carol.headers["Authorization"] = f"Bearer {carol_token}"
    made = carol.post(world.base + "/api/v1/sessions", json={"template": "firefox"}, timeout=30).json()
    base = f"{world.base}/api/v1/sessions/{made['name']}"
    cid = carol.get(base + "/connect", timeout=30).json()["connectionId"]

    def beat(token: str | None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.post(base + "/heartbeat", params={"connectionId": cid}, headers=headers, timeout=30)

    assert beat(carol_token).status_code == 200
    assert beat(family_token).status_code == 200
    assert beat(None).status_code == 401
    assert beat("not-a-token").status_code == 401
    def last_beat_is_old() -> bool:  # a refused caller's beat must write nothing
        row = fetch_one("SELECT last_heartbeat < now() - interval '10 seconds' AS old FROM connections WHERE id = %s",
                        (cid,))
        return bool(row and row["old"])

    execute("UPDATE connections SET last_heartbeat = now() - interval '20 seconds' WHERE id = %s", (cid,))
    execute("UPDATE token_families SET revoked_at = now() WHERE id = %s", (family["id"],))
    revoked = beat(family_token)
    assert revoked.status_code == 401 and revoked.json()["error"] == "token revoked"
    assert last_beat_is_old()
    assert beat(carol_token).status_code == 200
    execute("UPDATE connections SET last_heartbeat = now() - interval '20 seconds' WHERE id = %s", (cid,))
    execute("UPDATE users SET active = false WHERE id = %s", (carol_id,))
    disabled = beat(carol_token)
    assert disabled.status_code == 403 and disabled.json()["error"] == "account disabled"
    assert last_beat_is_old()
    stranger, _ = issue_access_token(user_id=str(uuid.uuid4()), username="carol", role="admin", groups=[],
                                     family_id=family["id"])
    assert beat(stranger).status_code == 401  # a signed token of a user who does not exist
    assert last_beat_is_old()
    # the same answers as a route the Api authenticates
    assert carol.get(base, timeout=30).status_code == 403
    execute("UPDATE users SET active = true WHERE id = %s", (carol_id,))
    assert carol.delete(base, timeout=30).status_code == 200
    assert beat(carol_token).status_code == 404


def test_heartbeat_moves_session_activity(world: World) -> None:
    from streamspace.db import execute, fetch_one

    name = create(world.alice)["name"]
    cid = world.alice.get(f"/api/v1/sessions/{name}/connect").json()["connectionId"]
    execute("UPDATE sessions SET last_activity = now() - interval '20 minutes' WHERE name = %s", (name,))
    assert world.alice.post(f"/api/v1/sessions/{name}/heartbeat", params={"connectionId": cid}).status_code == 200
    row = fetch_one("SELECT now() - last_activity < interval '1 minute' AS fresh FROM sessions WHERE name = %s",
                    (name,))
    assert row is not None and row["fresh"]
    listed = world.alice.get("/api/v1/sessions").json()["sessions"][0]
    assert listed["createdAt"].endswith("Z") and listed["status"]["lastActivity"].endswith("Z")
    world.alice.delete(f"/api/v1/sessions/{name}")


# -- no database lock held across a Kubernetes call ---------------------------------------------------

def test_a_change_holds_no_row_lock_while_the_cluster_answers(world: World, sim: Any, db_url: str) -> None:
    """The cluster may take seconds to answer; a row lock held meanwhile would stall the heartbeats,
    the idle sweep and the reconcile of this session (issue 13: merge_patch ran inside the locked
    transaction)."""
    import threading

    import psycopg2.errors

    from streamspace.db import connect

    name = create(world.alice)["name"]
    held = sim.hold_requests("PATCH", rf"/sessions/{name}$")
    answers: list[Any] = []
    change = threading.Thread(target=lambda: answers.append(
        world.alice.patch(f"/api/v1/sessions/{name}", json={"tags": ["held"]})))
    change.start()
    try:
        assert held.arrived.wait(60), "the PATCH never reached the API server"
        with connect(db_url) as conn:
            conn.execute("SET lock_timeout = '1s'")
            try:
                locked = False
                conn.execute("SELECT 1 FROM sessions WHERE namespace = %s AND name = %s FOR UPDATE",
                             (NAMESPACE, name))
            except psycopg2.errors.LockNotAvailable:
                locked = True
    finally:
        held.release()
        change.join(60)
    assert not locked, "the session row was locked while its Kubernetes PATCH was in flight"
    assert answers and answers[0].status_code == 200, answers
    assert index_row(name)["tags"] == ["held"]  # type: ignore[index]
    world.alice.delete(f"/api/v1/sessions/{name}")


def test_a_change_that_races_another_write_is_applied_on_the_fresh_object(world: World, sim: Any) -> None:
    """The spec patch is guarded by the resourceVersion it read; a write in between (here a status
    update, as the reconcile makes) is a conflict that is retried, not lost or reported."""
    name = create(world.alice)["name"]
    sim.inject_failure(method="PATCH", path_regex=rf"/sessions/{name}$", status=409, times=2)
    try:
        response = world.alice.patch(f"/api/v1/sessions/{name}", json={"state": "hibernated"})
    finally:
        sim.clear_failures()
    assert response.status_code == 200, response.text
    assert session_object(name)["spec"]["state"] == "hibernated"  # type: ignore[index]
    assert index_row(name)["state"] == "hibernated"  # type: ignore[index]
    world.alice.delete(f"/api/v1/sessions/{name}")


def test_a_user_session_reads_the_same_in_the_list_and_under_the_user(world: World, serve: Any) -> None:
    """One view of a session row: GET /users/{id}/sessions answers the objects GET /sessions does,
    `user` included (issue 13: the user view said the username where the list says its label)."""
    import requests

    from tests.conftest import make_user

    user_id = make_user("dana.smith")
    name = create(world.admin, user="dana.smith")["name"]
    users = serve("users")

    listed = world.admin.get("/api/v1/sessions", params={"user": "dana.smith"}).json()["sessions"]
    under_user = requests.get(f"{users}/api/v1/users/{user_id}/sessions", timeout=30,
                              headers=dict(world.admin.http.headers)).json()

    assert under_user["total"] == 1 and under_user["sessions"] == listed
    assert listed[0]["user"] == session_object(name)["spec"]["user"] != "dana.smith"  # type: ignore[index]
    world.admin.delete(f"/api/v1/sessions/{name}")


def test_list_reads_the_callers_standing_and_role_as_they_are_now(world: World) -> None:
    """The list reads the caller's standing in its own statement: a revoked login or a disabled
    account is refused, and the role is the database's now, not the token's."""
    import requests

    from streamspace.db import execute
    from tests.conftest import make_user, token_for

    dora_id = make_user("dora")
    dora_token = token_for(dora_id, "dora")  # the token says: user
    alices = create(world.alice)["name"]

    def listed(token: str, **params: Any) -> requests.Response:
        return requests.get(world.base + "/api/v1/sessions", params=params,
                            headers={"Authorization": f"Bearer {token}"}, timeout=30)

    assert listed(dora_token).json() == {"sessions": [], "total": 0}
    assert listed(dora_token, user="alice").status_code == 403
    execute("UPDATE users SET role = 'admin' WHERE id = %s", (dora_id,))  # promoted after the token
    assert alices in {s["name"] for s in listed(dora_token).json()["sessions"]}
    assert {s["user"] for s in listed(dora_token, user="alice").json()["sessions"]} == {"alice"}
    root_token = token_for(make_user("demoted"), "demoted", role="admin")  # the token says: admin
    execute("UPDATE users SET role = 'user' WHERE username = 'demoted'")
    assert listed(root_token).json() == {"sessions": [], "total": 0}
    assert listed(root_token, user="alice").status_code == 403
    execute("UPDATE users SET active = false WHERE id = %s", (dora_id,))
    disabled = listed(dora_token)
    assert disabled.status_code == 403 and disabled.json()["error"] == "account disabled"
    execute("UPDATE token_families SET revoked_at = now() WHERE user_id = %s", (dora_id,))
    execute("UPDATE users SET active = true WHERE id = %s", (dora_id,))
    revoked = listed(dora_token, offset=5000)  # past the last page too
    assert revoked.status_code == 401 and revoked.json()["error"] == "token revoked"
    world.alice.delete(f"/api/v1/sessions/{alices}")


def test_a_list_and_a_heartbeat_are_one_sql_statement_each(world: World) -> None:
    """The hot paths' round trips are counted (streamspace.db.statement_count), so a change that
    adds one, a standing check of its own included, fails here: every list, whatever its filters,
    scope or page, and every heartbeat is ONE statement."""
    from streamspace.db import statement_count

    alice, admin = world.alice, world.admin
    names = [create(alice)["name"] for _ in range(3)]
    cid = alice.get(f"/api/v1/sessions/{names[0]}/connect").json()["connectionId"]

    def statements(client: Any, method: str, path: str, **params: Any) -> int:
        send = getattr(client, method)
        assert send(path, params=params).status_code == 200  # warm: prepared statements, a verified token
        before = statement_count()
        response = send(path, params=params)
        assert response.status_code == 200, response.text
        return statement_count() - before

    assert statements(alice, "get", "/api/v1/sessions") == 1
    assert statements(alice, "get", "/api/v1/sessions", limit=2, offset=1, state="running", template="firefox") == 1
    assert statements(alice, "get", "/api/v1/sessions", offset=5000) == 1  # past the last page: the total too
    assert statements(admin, "get", "/api/v1/sessions") == 1
    assert statements(admin, "get", "/api/v1/sessions", user="alice", state="running") == 1
    assert statements(alice, "post", f"/api/v1/sessions/{names[0]}/heartbeat", connectionId=cid) == 1
    past = alice.get("/api/v1/sessions", params={"offset": 5000}).json()
    assert past["sessions"] == [] and past["total"] >= 3
    for name in names:
        alice.delete(f"/api/v1/sessions/{name}")


def test_the_list_answers_each_session_as_it_is_now_byte_for_byte_as_the_encoder_writes_it(world: World) -> None:
    """GET /api/v1/sessions keeps each session's JSON by the digest of the values it was made of:
    what it answers must be exactly encoding.dumps of the list as the service builds it, and a
    session that changed (tags, a new connection) must be answered as it is now, never as it was."""
    from streamspace.auth.principal import Principal
    from streamspace.auth.tokens import verify_access_token
    from streamspace.encoding import dumps
    from streamspace.sessions import listing

    alice = world.alice
    names = [create(alice)["name"] for _ in range(3)]
    claims = verify_access_token(alice.http.headers["Authorization"].removeprefix("Bearer "))
    caller = Principal(alice.user_id, "alice", "user", (), claims.family_id)

    def listed(**params: Any) -> dict[str, Any]:
        answer = alice.get("/api/v1/sessions", params=params)
        assert answer.status_code == 200, answer.text
        assert answer.content == dumps(listing.list_sessions(caller, **params))
        return answer.json()

    first = listed()
    assert listed() == first  # the second time from what the first one rendered
    assert alice.patch(f"/api/v1/sessions/{names[1]}", json={"tags": ["changed"]}).status_code == 200
    assert alice.get(f"/api/v1/sessions/{names[2]}/connect").status_code == 200
    now = {s["name"]: s for s in listed()["sessions"]}
    before = {s["name"]: s for s in first["sessions"]}
    assert now[names[1]]["tags"] == ["changed"] and before[names[1]]["tags"] != ["changed"]
    assert now[names[2]]["activeConnections"] == before[names[2]]["activeConnections"] + 1
    assert now[names[0]] == before[names[0]]
    listed(limit=1, offset=1)
    listed(state="running", template="firefox")
    assert listed(offset=5000)["sessions"] == []
    for name in names:
        alice.delete(f"/api/v1/sessions/{name}")
