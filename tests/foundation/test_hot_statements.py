"""db.HotStatement: the hottest routes' statements run prepared, on the driver's C cursor with tuple
rows, and must answer, fail and count exactly as the same statement through our ordinary cursor."""

from __future__ import annotations

import itertools

import psycopg2.errors
import pytest

_names = itertools.count()


def _statement(sql: str):
    from streamspace.db import HotStatement

    return HotStatement(f"test_{next(_names)}", sql)


_TYPES_SQL = ("SELECT %(n)s::int AS n, %(n)s::bigint * 3 AS tripled, %(text)s::text AS text, %(raw)s::bytea AS raw,"
              " %(flag)s::bool AS flag, %(missing)s::text AS missing, %(id)s::uuid AS id, ARRAY['a', %(text)s] AS tags,"
              " 2.5::float8 AS half, 8::float8 AS whole, make_interval(secs => %(n)s) AS span,"
              " '2026-12-01 10:00:00+00'::timestamptz AS at, 'it''s 100%%' AS percent")


def test_a_hot_statement_answers_the_values_and_types_an_ordinary_statement_answers_and_counts_as_one(db_url):
    from streamspace.db import fetch_one, statement_count

    params = {"n": 7, "text": "héllo", "raw": b"\x00\x01\xff", "flag": True, "missing": None,
              "id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427"}
    hot = _statement(_TYPES_SQL)
    before = statement_count()
    answer = hot.fetch_one(params)
    assert statement_count() - before == 1
    expected = fetch_one(_TYPES_SQL, params)
    assert answer == expected
    assert [type(v) for v in answer.values()] == [type(v) for v in expected.values()]  # 8.0 stays a float
    assert answer["percent"] == "it's 100%"
    assert hot.columns == tuple(expected)
    assert _statement("SELECT 1 AS one WHERE %(never)s::bool").fetch_one({"never": False}) is None


def test_a_server_error_raises_what_an_ordinary_statement_raises_and_the_connection_serves_on(db_url):
    from streamspace.db import connection

    hot = _statement("SELECT %(id)s::uuid AS id")
    with connection() as conn:
        with pytest.raises(psycopg2.errors.InvalidTextRepresentation, match="uuid"):
            hot.run(conn, {"id": "not-a-uuid"})
        with pytest.raises(psycopg2.errors.InvalidTextRepresentation, match="uuid"):
            conn.execute("SELECT %(id)s::uuid AS id", {"id": "not-a-uuid"})
        assert not conn.in_transaction()
        assert hot.run(conn, {"id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427"})[0][0].hex == \
            "1b4e28ba2fa111d2883f0016d3cca427"


def test_a_statement_is_prepared_once_per_connection_and_again_after_a_deallocate(db_url):
    from streamspace.db import connection

    hot = _statement("SELECT %(n)s::int + 1 AS next")
    count = "SELECT count(*) AS n FROM pg_prepared_statements WHERE name = %s"
    with connection() as conn:
        assert hot.run(conn, {"n": 1}) == [(2,)]
        assert hot.run(conn, {"n": 2}) == [(3,)]
        assert conn.execute(count, (hot.name,)).fetchone()["n"] == 1
        conn.execute("DEALLOCATE ALL")  # whoever did it, the next run prepares it again
        assert hot.run(conn, {"n": 3}) == [(4,)]
        assert conn.execute(count, (hot.name,)).fetchone()["n"] == 1


def test_with_prepared_statements_off_nothing_is_prepared_on_the_server(db_url, setting):
    from streamspace.db import close_pool, connection

    setting(DB_PREPARED_STATEMENTS="false")  # PgBouncer in transaction mode
    close_pool()
    try:
        hot = _statement("SELECT %(n)s::int * 2 AS double")
        with connection() as conn:
            assert hot.run(conn, {"n": 21}) == [(42,)]
            assert conn.execute("SELECT count(*) AS n FROM pg_prepared_statements").fetchone()["n"] == 0
    finally:
        close_pool()


def test_a_connection_lost_under_a_hot_statement_is_database_unavailable_and_the_pool_replaces_it(db_url):
    from streamspace.db import DatabaseUnavailable, connect, connection

    hot = _statement("SELECT %(n)s::int AS n")
    with pytest.raises(DatabaseUnavailable), connection() as conn:
        with connect(db_url) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
        hot.run(conn, {"n": 1})
    assert hot.fetch_one({"n": 5}) == {"n": 5}


def test_parameters_other_than_named_ones_are_refused_when_the_statement_is_declared():
    with pytest.raises(ValueError, match="placeholders"):
        _statement("SELECT %s::int")
