"""A deleted user's profile objects leave the store (issue 15), with moto in server mode, the embedded
Postgres and the functions over real HTTP: deleting the user records the objects (the users function holds
no store credentials), admins see them pending, the backup function deletes them on the deletion's event
(routed by the shipped Triggers through the local relay) or at its next tick when the store was down;
failed restores and saves reach the user's record and the metrics function's gauges."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from streamspace.events.apiserver import ping_event
from tests.conftest import Client, environment, make_user, token_for
from tests.reconcile.reconcile_helpers import NS, post
from tests.sim.sim_helpers import eventually
from tests.storage.conftest import S3Store, closed_port_url
from tests.storage.test_profiles import AGENT, token

PURGE_TYPE = "io.streamspace.profiles.purge-requested"


@pytest.fixture(scope="module")
def urls(db_url: str, sim: Any, s3_store: S3Store, serve: Callable[..., str]) -> Iterator[dict[str, str]]:
    from streamspace.local.gateway import load_function_app
    from streamspace.local.server import BackgroundServer

    with environment(HOME_STORAGE="s3"):
        backup = BackgroundServer(load_function_app("backup")).start()
        metrics = BackgroundServer(load_function_app("metrics")).start()
        try:
            yield {"api": serve("users", "storage"), "backup": backup.url, "metrics": metrics.url}
        finally:
            backup.stop()
            metrics.stop()


@pytest.fixture(scope="module")
def admin(urls: dict[str, str]) -> Client:
    return Client(urls["api"], token_for(make_user("purge-admin", role="admin"), "purge-admin", "admin"))


def saved_user(urls: dict[str, str], name: str, tmp_path: Path, sessions: int = 2) -> str:
    """A user with `sessions` saved profile versions (one per session, ended since)."""
    from streamspace.db import execute

    user_id = make_user(name)
    home = tmp_path / name
    home.mkdir()
    for n in range(sessions):
        (home / "work.txt").write_text(f"version {n}")
        env = {"PATH": os.environ.get("PATH", ""), "PROFILE_API": urls["api"],
               "PROFILE_TOKEN": token(user_id, f"desk-{n}"), "HOME_DIR": str(home)}
        saved = subprocess.run([sys.executable, str(AGENT), "save"], env=env, capture_output=True, text=True,
                               timeout=120)
        assert saved.returncode == 0, saved.stderr
    execute("UPDATE sessions SET state = 'terminated' WHERE user_id = %s", (user_id,))
    return user_id


def objects_of(store: S3Store, user_id: str) -> list[str]:
    listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix=f"tests/profiles/{user_id}/")
    return [o["Key"] for o in listed.get("Contents", [])]


def pending(admin: Client, user_id: str) -> dict[str, Any] | None:
    answer = admin.get("/api/v1/profiles")
    assert answer.status_code == 200, answer.text
    return next((p for p in answer.json()["pendingDeletion"] if p["userId"] == user_id), None)


def tick(urls: dict[str, str]) -> int:
    headers, body = ping_event(NS, "backup", '{"task": "backup"}')
    return post(urls["backup"], headers, body)[0]


def test_a_deleted_users_objects_are_pending_then_deleted_by_the_next_tick_once_the_store_answers(
        urls: dict[str, str], admin: Client, s3_store: S3Store, tmp_path: Path,
        setting: Callable[..., None]) -> None:
    user_id = saved_user(urls, "purge-gina", tmp_path)
    assert len(objects_of(s3_store, user_id)) == 2
    # No broker reachable (K_SINK unset): the deletion still succeeds and records what is to go.
    setting(K_SINK=None)
    assert admin.delete(f"/api/v1/users/{user_id}").status_code == 200
    waiting = pending(admin, user_id)
    assert waiting is not None and waiting["username"] == "purge-gina" and waiting["objects"] == 2
    assert waiting["sizeBytes"] > 0 and waiting["attempts"] == 0 and waiting["lastError"] is None
    assert len(objects_of(s3_store, user_id)) == 2  # still there, and shown as pending meanwhile
    user = Client(urls["api"], token_for(make_user("purge-bystander"), "purge-bystander"))
    assert "pendingDeletion" not in user.get("/api/v1/profiles").json()  # admins only

    # The store is down at the tick: the objects stay pending, with the reason, for the next one.
    setting(S3_ENDPOINT_URL=closed_port_url())
    from streamspace import objectstore

    objectstore.reset_clients()
    tick(urls)
    failing = pending(admin, user_id)
    assert failing is not None and failing["attempts"] == 1 and "object store" in failing["lastError"]
    exposition = requests.get(urls["metrics"] + "/metrics", timeout=30).text
    assert 'streamspace_profile_purge_objects{state="failing"}' in exposition

    setting(S3_ENDPOINT_URL=s3_store.endpoint)
    objectstore.reset_clients()
    assert tick(urls) < 300
    assert pending(admin, user_id) is None
    assert objects_of(s3_store, user_id) == []


def test_deleting_a_user_sends_the_event_that_deletes_their_objects_through_the_broker(
        urls: dict[str, str], admin: Client, s3_store: S3Store, tmp_path: Path,
        setting: Callable[..., None]) -> None:
    from streamspace.local.relay import Relay
    from streamspace.local.server import BackgroundServer

    user_id = saved_user(urls, "purge-hugo", tmp_path, sessions=1)
    other_id = saved_user(urls, "purge-iris", tmp_path, sessions=1)
    relay = Relay({"backup": urls["backup"]}, NS).start(watch=False, schedule=False)
    broker = BackgroundServer(relay.wsgi_app).start()
    try:
        setting(K_SINK=broker.url + "/")
        assert admin.delete(f"/api/v1/users/{user_id}").status_code == 200
        eventually(lambda: objects_of(s3_store, user_id) == [], timeout=60, what="the deleted user's objects gone")
    finally:
        broker.stop()
        relay.stop()
    assert pending(admin, user_id) is None
    assert len(objects_of(s3_store, other_id)) == 1  # nobody else's


def test_failed_restores_and_saves_are_recorded_for_the_user_and_counted_for_alerts(
        urls: dict[str, str], s3_store: S3Store, tmp_path: Path) -> None:
    from streamspace.db import fetch_one

    user_id = make_user("purge-jo")
    agent_token = token(user_id, "desk-1")
    home = tmp_path / "home"
    home.mkdir()
    (home / "a.txt").write_text("x")
    env = {"PATH": os.environ.get("PATH", ""), "PROFILE_API": urls["api"], "PROFILE_TOKEN": agent_token,
           "HOME_DIR": str(home)}
    assert subprocess.run([sys.executable, str(AGENT), "save"], env=env, timeout=120).returncode == 0
    current = fetch_one("SELECT object_key FROM profiles WHERE user_id = %s AND is_current", (user_id,))
    assert current is not None
    s3_store.client.put_object(Bucket=s3_store.bucket, Key=current["object_key"], Body=b"tampered")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    restored = subprocess.run([sys.executable, str(AGENT), "restore"], env={**env, "HOME_DIR": str(fresh)},
                              capture_output=True, text=True, timeout=120)
    assert restored.returncode == 0  # the session starts, with the note
    failure = fetch_one("SELECT operation, session, reason FROM profile_failures WHERE user_id = %s", (user_id,))
    assert failure is not None and failure["operation"] == "restore" and "checksum" in failure["reason"]
    exposition = requests.get(urls["metrics"] + "/metrics", timeout=30).text
    count = next(line for line in exposition.splitlines()
                 if line.startswith('streamspace_profile_failures_last_hour{operation="restore"}'))
    assert float(count.split()[-1]) >= 1
    bad = requests.post(f"{urls['api']}/api/v1/profiles/agent/failures", timeout=30,
                        headers={"Authorization": f"Bearer {agent_token}"},
                        json={"operation": "format-the-disk", "reason": "x"})
    assert bad.status_code == 400
    anonymous = requests.post(f"{urls['api']}/api/v1/profiles/agent/failures", timeout=30,
                              json={"operation": "save", "reason": "x"})
    assert anonymous.status_code == 401
