"""Backups and restore (issue 15), end to end: the backup function served over real HTTP and triggered by
CloudEvents as a PingSource and the broker send them, a real embedded Postgres dumped with pg_dump, the
Templates and Sessions read from the simulated API server through the official client (as the backup
function's own ServiceAccount), the objects in moto's S3 server, and the restore command run for real."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

import pytest

from streamspace import kube
from streamspace.db import connect
from streamspace.events.apiserver import ping_event
from tests.conftest import Client, create_database, drop_database, make_user, token_for
from tests.reconcile.reconcile_helpers import NS, post, session_manifest, template_manifest
from tests.sim.sim_helpers import eventually
from tests.storage.conftest import S3Store, closed_port_url


@pytest.fixture(scope="module")
def backup_url(db_url: str, sim: object, s3_store: S3Store) -> Iterator[str]:
    """The backup function, served the way its container runs it."""
    from streamspace.local.gateway import load_function_app
    from streamspace.local.server import BackgroundServer

    server = BackgroundServer(load_function_app("backup")).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def storage_url(db_url: str, s3_store: S3Store) -> Iterator[str]:
    """The storage function alone, as its pod serves it (its /metrics is cluster-local, never routed)."""
    from streamspace.local.gateway import load_function_app
    from streamspace.local.server import BackgroundServer

    server = BackgroundServer(load_function_app("storage")).start()
    yield server.url.rstrip("/")
    server.stop()


@pytest.fixture(scope="module")
def admin(serve: Callable[..., str], s3_store: S3Store) -> Client:
    user_id = make_user("backup-admin", role="admin")
    return Client(serve("storage"), token_for(user_id, "backup-admin", "admin"), "backup-admin", user_id)


def tick(backup_url: str) -> tuple[int, bytes]:
    """The daily PingSource's tick, as Knative delivers it."""
    headers, body = ping_event(NS, "backup", json.dumps({"task": "backup"}))
    return post(backup_url, headers, body)


def rows(where: str = "true") -> list[dict[str, Any]]:
    from streamspace.db import fetch_all

    return fetch_all(f"SELECT * FROM backups WHERE {where} ORDER BY started_at")  # noqa: S608 - test literals


def forget_backups() -> None:
    """Start from no backups: each test counts its own."""
    from streamspace.backups import service

    for row in rows("status <> 'running'"):
        service._delete_objects(row["id"])
    from streamspace.db import execute

    execute("DELETE FROM backups")


def stored_keys(store: S3Store) -> list[str]:
    listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix="tests/backups/")
    return sorted(o["Key"] for o in listed.get("Contents", []))


def restore_cli(*args: str) -> tuple[int, str, str]:
    from streamspace.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["restore", *args])
    return code, out.getvalue(), err.getvalue()


def table_fingerprints(url: str) -> dict[str, tuple[int, str]]:
    """Per table of the public schema: its row count and a digest of its rows' text, in a stable order."""
    with connect(url) as conn:
        tables = [r["tablename"] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename").fetchall()]
        result = {}
        for table in tables:
            row = conn.execute(
                f'SELECT count(*) AS n, md5(coalesce(string_agg(t::text, E\'\\n\' ORDER BY t::text), \'\')) AS digest'  # noqa: S608
                f' FROM "{table}" t').fetchone()
            result[table] = (row["n"], row["digest"])
    return result


@pytest.fixture
def fresh_database(pg_server_url: str) -> Iterator[str]:
    url = create_database(pg_server_url, None)
    yield url
    drop_database(pg_server_url, url)


def test_a_backup_restored_into_a_fresh_database_has_every_row_and_re_applies_templates_and_sessions(
        backup_url: str, admin: Client, s3_store: S3Store, fresh_database: str, db_url: str) -> None:
    forget_backups()
    owner = make_user("restored-alice")
    from streamspace.db import execute

    execute("INSERT INTO groups (name, display_name) VALUES ('restored-team', 'Restored Team')")
    kube.apply(template_manifest("backup-firefox"))
    kube.apply(session_manifest("backup-session-1", user=owner, template="backup-firefox", state="hibernated"))

    status, answer = tick(backup_url)
    assert status < 300, answer
    listed = admin.get("/api/v1/admin/backups").json()["backups"]
    assert [b["status"] for b in listed] == ["succeeded"], listed
    backup = listed[0]
    assert backup["trigger"] == "schedule" and backup["templates"] >= 1 and backup["sessions"] >= 1
    assert len(backup["sha256"]) == 64 and backup["sizeBytes"] > 0
    dump_key = backup["key"].replace("manifest.json", "database.pgdump")
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key=dump_key)
    assert head["ServerSideEncryption"] == "AES256"
    import hashlib

    stored = s3_store.client.get_object(Bucket=s3_store.bucket, Key=dump_key)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == backup["sha256"]
    assert stored.startswith(b"PGDMP")  # pg_dump's custom format

    before = table_fingerprints(db_url)
    kube.delete("Session", "backup-session-1", NS)
    kube.delete("Template", "backup-firefox", NS)

    code, out, err = restore_cli(backup["key"], "--database-url", fresh_database, "--sha256", backup["sha256"])
    assert code == 0, err
    assert "checksums verified" in out

    after = table_fingerprints(fresh_database)
    assert set(after) == set(before)
    for table in before:
        if table != "backups":  # the run's own row was dumped while it ran: see below
            assert after[table] == before[table], table
    with connect(fresh_database) as conn:
        restored = conn.execute("SELECT status, sha256 FROM backups WHERE id = %s", (backup["id"],)).fetchone()
        assert restored == {"status": "succeeded", "sha256": backup["sha256"]}
        assert conn.execute("SELECT count(*) AS n FROM users WHERE username = 'restored-alice'").fetchone() == {"n": 1}
    template = kube.get("Template", "backup-firefox", NS)
    session = kube.get("Session", "backup-session-1", NS)
    assert template is not None and template["spec"]["baseImage"] == "lscr.io/linuxserver/firefox:latest"
    assert session is not None and session["spec"]["user"] == owner and session["spec"]["state"] == "hibernated"
    kube.delete("Session", "backup-session-1", NS)


def test_a_non_empty_database_is_refused_unless_forced(backup_url: str, s3_store: S3Store, pg_server_url: str,
                                                       template_db: str) -> None:
    forget_backups()
    assert tick(backup_url)[0] < 300
    backup_id = rows()[0]["id"]
    occupied = create_database(pg_server_url, template_db)  # a migrated database: not empty
    try:
        with connect(occupied) as conn:
            conn.execute("INSERT INTO groups (name, display_name) VALUES ('only-here', 'Only here')")
        code, _, err = restore_cli(backup_id, "--database-url", occupied, "--no-cluster")
        assert code == 1 and "not empty" in err and "--force" in err
        with connect(occupied) as conn:
            assert conn.execute("SELECT count(*) AS n FROM groups WHERE name = 'only-here'").fetchone() == {"n": 1}

        code, _, err = restore_cli(backup_id, "--database-url", occupied, "--no-cluster", "--force")
        assert code == 0, err
        with connect(occupied) as conn:
            assert conn.execute("SELECT count(*) AS n FROM groups WHERE name = 'only-here'").fetchone() == {"n": 0}
            assert conn.execute("SELECT count(*) AS n FROM backups WHERE id = %s", (backup_id,)).fetchone() == {"n": 1}
    finally:
        drop_database(pg_server_url, occupied)


def test_a_tampered_object_is_refused_naming_the_checksum_mismatch(backup_url: str, s3_store: S3Store,
                                                                   fresh_database: str) -> None:
    forget_backups()
    assert tick(backup_url)[0] < 300
    row = rows()[0]
    dump_key = row["manifest_key"].replace("manifest.json", "database.pgdump")
    original = s3_store.client.get_object(Bucket=s3_store.bucket, Key=dump_key)["Body"].read()
    tampered = original[:-1] + bytes([original[-1] ^ 1])
    s3_store.client.put_object(Bucket=s3_store.bucket, Key=dump_key, Body=tampered)

    code, _, err = restore_cli(row["id"], "--database-url", fresh_database)
    assert code == 1
    assert "checksum mismatch" in err and dump_key in err and row["sha256"] in err
    from streamspace.backups.postgres import user_objects

    assert user_objects(fresh_database) == 0  # nothing was restored

    # A manifest rewritten to match the tampered dump is caught by the checksum the admin list shows.
    manifest_key = row["manifest_key"]
    manifest = json.loads(s3_store.client.get_object(Bucket=s3_store.bucket, Key=manifest_key)["Body"].read())
    import hashlib

    manifest["objects"]["database"]["sha256"] = hashlib.sha256(tampered).hexdigest()
    s3_store.client.put_object(Bucket=s3_store.bucket, Key=manifest_key, Body=json.dumps(manifest).encode())
    code, _, err = restore_cli(row["id"], "--database-url", fresh_database, "--sha256", row["sha256"])
    assert code == 1 and "checksum mismatch" in err and "--sha256" in err
    assert user_objects(fresh_database) == 0


def test_retention_runs_after_a_success_and_keeps_what_the_policy_says(backup_url: str, s3_store: S3Store,
                                                                       setting: Callable[..., None]) -> None:
    forget_backups()
    setting(BACKUP_KEEP_DAILY="1", BACKUP_KEEP_WEEKLY="0", BACKUP_KEEP_MONTHLY="0")
    assert tick(backup_url)[0] < 300
    first = rows()[0]["id"]
    assert tick(backup_url)[0] < 300
    remaining = rows()
    assert [r["status"] for r in remaining] == ["succeeded"]  # same day: only the newest is kept
    assert remaining[0]["id"] != first
    keys = stored_keys(s3_store)
    assert not [k for k in keys if f"/{first}/" in k]
    assert {k.rsplit("/", 1)[1] for k in keys} == {"database.pgdump", "cluster.json", "manifest.json"}


def test_an_unreachable_store_fails_the_run_visibly_and_the_next_trigger_runs_again(
        backup_url: str, storage_url: str, admin: Client, s3_store: S3Store, setting: Callable[..., None]) -> None:
    forget_backups()
    with_store = {"S3_ENDPOINT_URL": s3_store.endpoint}
    setting(S3_ENDPOINT_URL=closed_port_url())
    status, answer = tick(backup_url)
    assert status == 422, answer  # refused, not retried by the broker: the next tick runs again
    failed = rows()
    assert [r["status"] for r in failed] == ["failed"]
    assert "object store" in failed[0]["error"]
    listed = admin.get("/api/v1/admin/backups").json()["backups"]
    assert listed[0]["status"] == "failed" and "object store" in listed[0]["error"]
    metrics = admin.http.get(storage_url + "/metrics", timeout=30).text
    assert f'streamspace_backup_last_run_failed{{bucket="{s3_store.bucket}"}} 1.0' in metrics

    setting(**with_store)
    assert tick(backup_url)[0] < 300
    assert [r["status"] for r in rows()] == ["failed", "succeeded"]
    metrics = admin.http.get(storage_url + "/metrics", timeout=30).text
    assert f'streamspace_backup_last_run_failed{{bucket="{s3_store.bucket}"}} 0.0' in metrics
    assert f'streamspace_backup_last_success_timestamp_seconds{{bucket="{s3_store.bucket}"}} 0.0' not in metrics


def test_two_triggers_at_once_run_exactly_one_backup(backup_url: str, admin: Client, s3_store: S3Store,
                                                     db_url: str) -> None:
    """The first run is held inside pg_dump (a test transaction locks a table it must read), so the
    second trigger certainly arrives while the first holds the lease."""
    forget_backups()
    blocker = connect(db_url)
    blocker.execute("BEGIN")
    blocker.execute("LOCK TABLE groups IN ACCESS EXCLUSIVE MODE")
    outcome: dict[str, Any] = {}
    first = threading.Thread(target=lambda: outcome.setdefault("first", tick(backup_url)))
    first.start()
    try:
        def dump_waits_on_the_lock() -> bool:
            with connect(db_url) as conn:
                return conn.execute("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'pg_dump'"
                                    " AND wait_event_type = 'Lock'").fetchone()["n"] == 1

        eventually(dump_waits_on_the_lock, what="the first run's pg_dump waiting for the table")
        assert [r["status"] for r in rows()] == ["running"]
        second = tick(backup_url)
        assert second[0] < 300  # acknowledged (no broker retry) and skipped
        refused = admin.post("/api/v1/admin/backups")
        assert refused.status_code == 409 and refused.json()["error"] == "backup running"
    finally:
        blocker.close()  # (ends its transaction: the lock goes)
        first.join(timeout=120)
    assert outcome["first"][0] < 300
    assert [r["status"] for r in rows()] == ["succeeded"]
    assert len([k for k in stored_keys(s3_store) if k.endswith("/manifest.json")]) == 1


def test_an_admin_requests_lists_and_deletes_backups_over_http(backup_url: str, admin: Client, s3_store: S3Store,
                                                               setting: Callable[..., None]) -> None:
    """POST goes through a broker (the local relay, routing by the shipped Triggers) to the backup function."""
    from streamspace.local.relay import Relay
    from streamspace.local.server import BackgroundServer

    forget_backups()
    relay = Relay({"backup": backup_url}, NS).start(watch=False, schedule=False)
    broker = BackgroundServer(relay.wsgi_app).start()
    try:
        setting(K_SINK=broker.url + "/")
        accepted = admin.post("/api/v1/admin/backups")
        assert accepted.status_code == 202, accepted.text
        done = eventually(lambda: [r for r in rows() if r["status"] == "succeeded"], timeout=120,
                          what="the requested backup")
        assert done[0]["trigger"] == "api" and done[0]["requested_by"] == "backup-admin"
    finally:
        broker.stop()
        relay.stop()

    backup_id = done[0]["id"]
    user = Client(admin.base, token_for(make_user("not-an-admin"), "not-an-admin"))
    assert user.get("/api/v1/admin/backups").status_code == 403
    assert user.delete(f"/api/v1/admin/backups/{backup_id}").status_code == 403
    assert admin.delete("/api/v1/admin/backups/not-a-backup").status_code == 400
    assert admin.delete("/api/v1/admin/backups/20200101T000000Z-abcdef").status_code == 404
    assert stored_keys(s3_store)
    gone = admin.delete(f"/api/v1/admin/backups/{backup_id}")
    assert gone.status_code == 200, gone.text
    assert stored_keys(s3_store) == []
    assert admin.get("/api/v1/admin/backups").json()["backups"] == []
    from streamspace.db import fetch_one

    audited = fetch_one("SELECT count(*) AS n FROM audit_log WHERE action = 'backup.delete' AND target = %s",
                        (backup_id,))
    assert audited is not None and audited["n"] == 1
