"""streamspace.db's own connection pool (psycopg_pool's replacement) and connection type, against
the real Postgres: a bounded wait, broken connections replaced, transactions never leaked from one
checkout to the next, fork safety (gunicorn forks its worker after importing the app)."""

from __future__ import annotations

import gc
import os
import threading
import uuid
from collections.abc import Iterator

import psycopg2
import psycopg2.errors
import pytest

from tests.sim.sim_helpers import eventually

CEILING = 60  # seconds: a generous bound for what should take milliseconds


@pytest.fixture
def pool_of(db_url: str) -> Iterator:
    """Pools of our own on the module's database (closed after the test)."""
    from streamspace.db.driver import Pool, connect

    made = []

    def make(size: int, timeout: float = CEILING):
        made.append(Pool(lambda: connect(db_url, connect_timeout=5), max_size=size, timeout=timeout))
        return made[-1]

    yield make
    for pool in made:
        pool.close()


def _backend(conn) -> int:
    return conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]


def test_an_exhausted_pool_makes_a_checkout_wait_then_time_out_and_a_waiter_gets_the_returned_one(pool_of):
    from streamspace.db.driver import PoolTimeout

    pool = pool_of(1)
    with pool.connection() as held:
        with pytest.raises(PoolTimeout, match="all 1 in use"), pool.connection(timeout=0.1):
            pass
        got: list[int] = []
        waiting = threading.Event()

        def wait_for_one() -> None:
            waiting.set()
            with pool.connection(timeout=CEILING) as conn:
                got.append(_backend(conn))

        waiter = threading.Thread(target=wait_for_one)
        waiter.start()
        assert waiting.wait(CEILING)
        pid = _backend(held)
    waiter.join(CEILING)
    assert got == [pid]  # the one connection, handed on when it came back


def test_a_checkout_that_times_out_is_database_unavailable_503(db_url, setting):
    from streamspace.db import DatabaseUnavailable, close_pool, connection

    setting(DB_POOL_SIZE="1")
    close_pool()
    try:
        with connection():
            with pytest.raises(DatabaseUnavailable, match="came free"), connection(timeout=0.1):
                pass
    finally:
        close_pool()


def test_a_connection_whose_backend_was_killed_is_replaced(pool_of, db_url):
    from streamspace.db import connect

    pool = pool_of(1)
    with pool.connection() as conn:
        first = _backend(conn)
    with connect(db_url) as admin:  # the server ends the idle pooled session (a restart, an operator)
        admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        eventually(lambda: not admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (first,)).fetchone(),
                   what="the backend ended")
    with pool.connection() as conn:  # noticed at checkout: no request fails for it
        second = _backend(conn)
    assert second != first
    with pytest.raises(psycopg2.OperationalError), pool.connection() as conn:  # killed while in use
        with connect(db_url) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (second,))
        _backend(conn)
    with pool.connection() as conn:
        assert _backend(conn) not in (first, second)


def test_a_connection_returned_inside_a_transaction_comes_back_rolled_back(pool_of, db_url):
    from streamspace.db import connect

    pool = pool_of(1)
    marker = f"pool-{uuid.uuid4().hex[:8]}"
    with pool.connection() as conn:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO groups (name, display_name) VALUES (%s, 'left open')", (marker,))
    with pool.connection() as conn:
        assert not conn.in_transaction()
        conn.execute("BEGIN")
        with pytest.raises(psycopg2.errors.DivisionByZero):
            conn.execute("SELECT 1 / 0")
        assert conn.in_transaction()  # failed, still open
    with pool.connection() as conn:
        assert not conn.in_transaction()
        assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
    with connect(db_url) as other:
        assert other.execute("SELECT count(*) AS n FROM groups WHERE name = %s", (marker,)).fetchone() == {"n": 0}


def test_transaction_commits_rolls_back_on_an_exception_and_nests_as_savepoints(db_url):
    from streamspace.db import connect, transaction

    names = [f"tx-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    with pytest.raises(RuntimeError), transaction() as conn:
        conn.execute("INSERT INTO groups (name, display_name) VALUES (%s, 'x')", (names[0],))
        raise RuntimeError("undo")
    with transaction() as conn:
        conn.execute("INSERT INTO groups (name, display_name) VALUES (%s, 'x')", (names[1],))
        with pytest.raises(psycopg2.errors.UniqueViolation), conn.transaction():
            conn.execute("INSERT INTO groups (name, display_name) VALUES (%s, 'x')", (names[2],))
            conn.execute("INSERT INTO groups (name, display_name) VALUES (%s, 'x')", (names[2],))
        assert conn.in_transaction()  # only the savepoint was undone
    with connect(db_url) as conn:
        found = conn.execute("SELECT name FROM groups WHERE name = ANY(%s)", (names,)).fetchall()
    assert found == [{"name": names[1]}]


def test_rows_are_plain_dicts_with_the_types_the_library_expects(db_url):
    import datetime

    from streamspace.db import fetch_one

    row = fetch_one("SELECT %(id)s::uuid AS id, %(raw)s::bytea AS raw, ARRAY[%(id)s::uuid] AS ids,"
                    " '{\"a\": [1]}'::jsonb AS doc, now() AS at, 1.5::numeric AS amount, NULL::bytea AS nothing",
                    {"id": uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427"), "raw": b"\x00\xff"})
    assert type(row) is dict
    assert row["id"] == uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427") and row["ids"] == [row["id"]]
    assert row["raw"] == b"\x00\xff" and type(row["raw"]) is bytes
    assert row["doc"] == {"a": [1]}
    assert row["at"].tzinfo is not None and row["at"].utcoffset() is not None
    assert isinstance(row["at"], datetime.datetime) and str(row["amount"]) == "1.5"
    assert row["nothing"] is None


def test_the_pool_never_opens_more_than_its_size_under_concurrent_checkouts(pool_of):
    pool = pool_of(2)
    seen: set[int] = set()
    lock = threading.Lock()
    start = threading.Barrier(6)

    def work() -> None:
        start.wait(CEILING)
        for _ in range(20):
            with pool.connection() as conn:
                pid = _backend(conn)
                with lock:
                    seen.add(pid)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(CEILING)
    assert 1 <= len(seen) <= 2


def test_a_forked_child_opens_its_own_connection_and_leaves_the_parents_alone(db_url):
    from streamspace.db import connect, connection

    with connection() as conn:
        parent = _backend(conn)
        parents_connection = conn  # idle in the pool across the fork: the child's copy of it is freed
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: the inherited pool is dropped, never closed, never used
        try:
            gc.collect()  # the dropped pool is freed: that must not end the parent's sessions either
            with connection() as conn:
                os.write(write, str(_backend(conn)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        child_backend = answer.read()
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and child_backend.isdigit()
    assert int(child_backend) != parent
    # The parent's session outlived the child: the server still has it, and the parent's very
    # connection still answers on it. (Asked of that connection itself, not of the pool's next
    # checkout: another thread of this process may be holding that one at the moment.)
    with connect(db_url) as admin:
        assert admin.execute("SELECT count(*) AS n FROM pg_stat_activity WHERE pid = %s",
                             (parent,)).fetchone()["n"] == 1
    assert not parents_connection.closed and _backend(parents_connection) == parent


def test_executemany_sends_its_rows_in_one_round_trip_per_100_and_writes_them_all(db_url):
    from streamspace.db import connection, statement_count

    with connection() as conn:
        conn.execute("CREATE TEMPORARY TABLE batch (n integer PRIMARY KEY, label text NOT NULL)")
        before = statement_count()
        conn.cursor().executemany("INSERT INTO batch (n, label) VALUES (%s, %s)",
                                  [(n, f"row {n}") for n in range(250)])
        assert statement_count() - before == 3  # 100 + 100 + 50: one counted round trip each
        rows = conn.execute("SELECT n, label FROM batch ORDER BY n").fetchall()
        conn.execute("DROP TABLE batch")
    assert rows == [{"n": n, "label": f"row {n}"} for n in range(250)]
