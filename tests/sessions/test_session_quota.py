"""Quota enforcement at create: race-free under concurrency, 403 with the quota object, released on
terminate and delete."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from .conftest import NAMESPACE, World, put_template


def _quota(user_id: str, max_sessions: int) -> None:
    from streamspace.db import execute

    execute("INSERT INTO user_quotas (user_id, max_sessions) VALUES (%s, %s)"
            " ON CONFLICT (user_id) DO UPDATE SET max_sessions = EXCLUDED.max_sessions", (user_id, max_sessions))


def test_twenty_concurrent_creates_against_a_quota_of_five(world: World, setting: Any) -> None:
    from streamspace import kube
    from streamspace.db import close_pool, fetch_one

    # The twenty creates queue on the owner's quota row, each holding a pooled connection meanwhile;
    # with the default 2 s wait for a connection a loaded machine answers some 503 (as production
    # would, with Retry-After). What is tested is the quota, so the wait gets a generous ceiling.
    setting(DB_POOL_TIMEOUT="60")
    close_pool()

    put_template("tiny", cpu="100m", memory="128Mi")
    alice = world.alice
    _quota(alice.user_id, 5)
    token = alice.http.headers["Authorization"]

    def launch(_: int) -> requests.Response:
        return requests.post(world.base + "/api/v1/sessions", json={"template": "tiny"},
                             headers={"Authorization": token}, timeout=60)

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(launch, range(20)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 5 + [403] * 15, [r.text for r in responses if r.status_code not in (201, 403)]
    refused = next(r.json() for r in responses if r.status_code == 403)
    assert refused["error"] == "Quota exceeded"
    assert refused["quota"]["current"] == "5" and refused["quota"]["limit"] == "5"
    assert refused["quota"]["requested"] == "1"
    rows = fetch_one("SELECT count(*) AS n FROM sessions WHERE user_id = %s", (alice.user_id,))
    assert rows is not None and rows["n"] == 5
    objects = kube.list_objects("Session", NAMESPACE, label_selector="stream.space/user=alice")
    assert len(objects) == 5
    assert {o["metadata"]["name"] for o in objects} == {r.json()["name"] for r in responses if r.status_code == 201}


def test_terminate_and_delete_release_quota(world: World) -> None:
    bob = world.bob
    put_template("tiny", cpu="100m", memory="128Mi")
    _quota(bob.user_id, 1)
    first = bob.post("/api/v1/sessions", json={"template": "tiny"})
    assert first.status_code == 201
    assert bob.post("/api/v1/sessions", json={"template": "tiny"}).status_code == 403
    assert bob.patch(f"/api/v1/sessions/{first.json()['name']}", json={"state": "hibernated"}).status_code == 200
    assert bob.post("/api/v1/sessions", json={"template": "tiny"}).status_code == 403  # hibernated still holds
    assert bob.patch(f"/api/v1/sessions/{first.json()['name']}", json={"state": "terminated"}).status_code == 200
    second = bob.post("/api/v1/sessions", json={"template": "tiny"})
    assert second.status_code == 201, second.text
    assert bob.delete(f"/api/v1/sessions/{second.json()['name']}").status_code == 200
    third = bob.post("/api/v1/sessions", json={"template": "tiny"})
    assert third.status_code == 201, third.text


def test_cpu_quota_names_the_resource(world: World) -> None:
    admin = world.admin
    put_template("big", cpu="3", memory="1Gi")
    made = admin.post("/api/v1/sessions", json={"template": "big"})
    assert made.status_code == 201
    refused = admin.post("/api/v1/sessions", json={"template": "big"})
    assert refused.status_code == 403
    assert refused.json()["quota"] == {"resource": "cpu", "scope": "user", "current": "3", "requested": "3",
                                       "limit": "4"}
