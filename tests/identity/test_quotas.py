"""Quotas: documented defaults, usage derived from the sessions index, check_and_reserve naming the
limit that failed, serialised under concurrency (exactly the limit, never more)."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import make_user

GiB = 2**30


def _session(user_id: str, username: str, state: str = "running", cpu: int = 1000, memory: int = 2 * GiB,
             storage: int = 0, conn=None) -> None:
    from streamspace.db import execute

    sql = ("INSERT INTO sessions (namespace, name, user_id, username, template, state, cpu_millis, memory_bytes,"
           " storage_bytes) VALUES ('streamspace', %s, %s, %s, 'firefox', %s, %s, %s, %s)")
    params = (f"{username}-{uuid.uuid4().hex[:8]}", user_id, username, state, cpu, memory, storage)
    if conn is None:
        execute(sql, params)
    else:
        conn.execute(sql, params)


def test_defaults_and_usage_from_sessions(db_url: str) -> None:
    from streamspace.quotas.service import user_quota

    uid = make_user("quota-usage")
    quota = user_quota(uid)
    assert quota["limits"] == {"maxSessions": 5, "maxCPU": "4", "maxMemory": "16Gi", "maxStorage": "100Gi"}
    assert quota["used"] == {"sessions": 0, "cpu": "0", "memory": "0", "storage": "0"}
    _session(uid, "quota-usage", "running", 500, GiB, 10 * GiB)
    _session(uid, "quota-usage", "hibernated", 1500, 2 * GiB, 0)
    _session(uid, "quota-usage", "terminated", 4000, 16 * GiB, 0)
    assert user_quota(uid)["used"] == {"sessions": 2, "cpu": "2", "memory": "3Gi", "storage": "10Gi"}
    assert set(quota) == {"username", "limits", "used", "createdAt", "updatedAt"}


def test_group_defaults(db_url: str) -> None:
    from streamspace.db import fetch_one
    from streamspace.quotas.service import group_quota

    row = fetch_one("INSERT INTO groups (name) VALUES ('default-team') RETURNING id::text AS id")
    assert row is not None
    assert group_quota(row["id"])["limits"] == {"maxSessions": 20, "maxCPU": "16", "maxMemory": "64Gi",
                                                "maxStorage": "500Gi"}


@pytest.mark.parametrize(("resource", "requested", "message_bits"), [
    ("sessions", (1, 100, GiB, 0), ("1", "1", "1")),
    ("cpu", (1, 2500, GiB, 0), ("1", "2500m", "3")),
    ("memory", (1, 100, 3 * GiB, 0), ("1Gi", "3Gi", "3Gi")),
    ("storage", (1, 100, GiB, 6 * GiB), ("0", "6Gi", "5Gi")),
])
def test_check_and_reserve_names_the_limit(db_url: str, resource: str, requested: tuple, message_bits: tuple) -> None:
    from streamspace.db import execute, transaction
    from streamspace.domain.quotas import QuotaExceeded, Usage
    from streamspace.quotas.service import check_and_reserve

    name = f"quota-{resource}"
    uid = make_user(name)
    execute("INSERT INTO user_quotas (user_id, max_sessions, max_cpu_millis, max_memory_bytes, max_storage_bytes)"
            " VALUES (%s, 1, 3000, %s, %s)", (uid, 3 * GiB, 5 * GiB))
    if resource == "sessions":
        _session(uid, name, cpu=1000, memory=GiB)
        message_bits = ("1", "1", "1")
    elif resource in ("cpu", "memory"):
        execute("UPDATE user_quotas SET max_sessions = 5 WHERE user_id = %s", (uid,))
        _session(uid, name, cpu=1000, memory=GiB)
    else:
        execute("UPDATE user_quotas SET max_sessions = 5 WHERE user_id = %s", (uid,))
    with pytest.raises(QuotaExceeded) as caught, transaction() as conn:
        check_and_reserve(conn, uid, Usage(*requested))
    exc = caught.value
    assert exc.limit == resource and exc.scope == "user"
    assert (exc.current, exc.requested, exc.maximum) == message_bits
    assert exc.error == "Quota exceeded" and resource in exc.message
    assert exc.details["quota"] == {"resource": resource, "scope": "user", "current": message_bits[0],
                             "requested": message_bits[1], "limit": message_bits[2]}


def test_a_group_limit_applies_to_every_member(db_url: str) -> None:
    from streamspace.db import execute, fetch_one, transaction
    from streamspace.domain.quotas import QuotaExceeded, Usage
    from streamspace.quotas.service import check_and_reserve

    one, two = make_user("member-one"), make_user("member-two")
    group = fetch_one("INSERT INTO groups (name) VALUES ('small-team') RETURNING id::text AS id")
    assert group is not None
    execute("INSERT INTO group_quotas (group_id, max_sessions) VALUES (%s, 2)", (group["id"],))
    for uid in (one, two):
        execute("INSERT INTO group_members (group_id, user_id) VALUES (%s, %s)", (group["id"], uid))
    _session(one, "member-one")
    _session(two, "member-two")
    with pytest.raises(QuotaExceeded) as caught, transaction() as conn:
        check_and_reserve(conn, one, Usage(1, 100, GiB, 0))
    assert caught.value.scope == "group:small-team" and caught.value.limit == "sessions"
    # Terminating one session releases the quota (derived, not counted).
    execute("UPDATE sessions SET state = 'terminated' WHERE username = 'member-two'")
    with transaction() as conn:
        check_and_reserve(conn, one, Usage(1, 100, GiB, 0))


def test_check_and_reserve_refuses_to_run_outside_a_transaction(db_url: str) -> None:
    from streamspace.db import connection
    from streamspace.domain.quotas import Usage
    from streamspace.quotas.service import check_and_reserve

    uid = make_user("no-transaction")
    with pytest.raises(RuntimeError), connection() as conn:
        check_and_reserve(conn, uid, Usage(1, 100, GiB, 0))


def _race(db_url: str, user_ids: list[str], usernames: list[str], attempts: int) -> int:
    """`attempts` threads, each on its own connection: begin, check_and_reserve, insert the row, commit."""
    from streamspace.db import connect
    from streamspace.domain.quotas import QuotaExceeded, Usage
    from streamspace.quotas.service import check_and_reserve

    barrier = threading.Barrier(attempts)

    def attempt(i: int) -> bool:
        uid, username = user_ids[i % len(user_ids)], usernames[i % len(usernames)]
        with connect(db_url) as conn:
            barrier.wait()
            try:
                with conn.transaction():
                    check_and_reserve(conn, uid, Usage(1, 100, 256 * 2**20, 0))
                    _session(uid, username, cpu=100, memory=256 * 2**20, conn=conn)
            except QuotaExceeded:
                return False
            return True

    with ThreadPoolExecutor(max_workers=attempts) as pool:
        return sum(pool.map(attempt, range(attempts)))


def test_twenty_concurrent_creates_against_a_limit_of_five_make_exactly_five(db_url: str) -> None:
    from streamspace.db import fetch_one

    uid = make_user("racer")
    assert _race(db_url, [uid], ["racer"], 20) == 5
    row = fetch_one("SELECT count(*) AS n FROM sessions WHERE user_id = %s", (uid,))
    assert row is not None and row["n"] == 5


def test_concurrent_creates_of_different_users_respect_their_shared_group(db_url: str) -> None:
    from streamspace.db import execute, fetch_one

    users = [make_user(f"group-racer-{i}") for i in range(3)]
    group = fetch_one("INSERT INTO groups (name) VALUES ('racing-team') RETURNING id::text AS id")
    assert group is not None
    execute("INSERT INTO group_quotas (group_id, max_sessions) VALUES (%s, 4)", (group["id"],))
    for uid in users:
        execute("INSERT INTO group_members (group_id, user_id) VALUES (%s, %s)", (group["id"], uid))
    made = _race(db_url, users, [f"group-racer-{i}" for i in range(3)], 18)
    row = fetch_one("SELECT count(*) AS n FROM sessions WHERE username LIKE 'group-racer-%%'")
    assert made == 4 and row is not None and row["n"] == 4


def test_the_http_layer_answers_403_with_the_quota_body(db_url: str) -> None:
    from streamspace.domain.quotas import QuotaExceeded
    from streamspace.functions import load

    api = load("users").api
    error = api._as_http_error(QuotaExceeded("cpu", "group:team", "15", "2", "16"))
    assert error.status == 403
    assert error.body() == {"error": "Quota exceeded", "message": str(QuotaExceeded("cpu", "group:team", "15", "2",
                                                                                       "16")),
                            "quota": {"resource": "cpu", "scope": "group:team", "current": "15", "requested": "2",
                                      "limit": "16"}}
