"""Postgres access: one small pool per process, opened on first use.

The driver is psycopg2 behind our own connection, cursor and pool (`streamspace.db.driver`,
imported on the first use of the database: ~17 ms of CPU, where psycopg 3 and its pool cost
~130-150 ms of a function's cold start; docs/performance.md). Every statement goes through a
counting cursor so tests and benchmarks can state how many SQL statements a hot path costs
(`statement_count()`); the few statements of the hottest routes are `HotStatement`s, counted the
same way.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Container, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from streamspace.config import environment
from streamspace.db.embedded import embedded_database_url
from streamspace.domain.errors import Unavailable

if TYPE_CHECKING:  # the driver is imported on the first use of the database, not with this module
    from streamspace.db.driver import Connection, Pool

_lock = threading.Lock()
_pool: Pool | None = None


class DatabaseUnavailable(Unavailable):
    """Postgres cannot be reached; HTTP answers 503 and CloudEvent handlers ask for a retry."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error="database unavailable")


def __getattr__(name: str) -> Any:  # `streamspace.db.Connection`, the stores' connection type
    if name == "Connection":
        from streamspace.db.driver import Connection

        return Connection
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def statement_count() -> int:
    from streamspace.db.driver import statements

    return statements()


def database_url() -> str:
    url = environment().database_url
    if url is None:

        url = embedded_database_url(environment().data_dir)
    return url


def connect(url: str, *, connect_timeout: int | None = None) -> Connection:
    """A connection of its own, outside the pool (a lease, LISTEN, administration): `with connect(url)
    as conn:` closes it at the end of the block. Postgres unreachable: DatabaseUnavailable."""
    from streamspace.db.driver import UNAVAILABLE, error_line
    from streamspace.db.driver import connect as driver_connect

    try:
        return driver_connect(url, connect_timeout=connect_timeout)
    except UNAVAILABLE as exc:
        raise DatabaseUnavailable(error_line(exc)) from exc


def pool() -> Pool:
    global _pool
    if _pool is None:
        with _lock:
            if _pool is None:
                from streamspace.db.driver import Pool
                from streamspace.db.driver import connect as driver_connect

                cfg = environment()
                url = database_url()
                prepares = cfg.db_prepared_statements
                connect_timeout = max(1, round(cfg.db_pool_timeout_seconds))

                def open_connection() -> Connection:  # (its errors are mapped by connection())
                    conn = driver_connect(url, connect_timeout=connect_timeout)
                    conn.prepares = prepares
                    return conn

                # A request waits at most db_pool_timeout_seconds for a connection: with the database
                # down it answers 503 (Retry-After) in about 2 s instead of holding its worker.
                _pool = Pool(open_connection, max_size=cfg.db_pool_size, timeout=cfg.db_pool_timeout_seconds)
    return _pool


def close_pool() -> None:
    global _pool
    with _lock:
        if _pool is not None:
            _pool.close()
            _pool = None


def _forget_pool_in_child() -> None:
    """After os.fork(), in the child (gunicorn forks its worker after importing the app): the
    inherited pool's sockets are the parent's sessions. Drop it without closing them (closing sends
    the server a goodbye on the parent's session; psycopg2 never closes a connection of another
    process when it frees one); the child opens its own."""
    global _pool, _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    _pool = None


os.register_at_fork(after_in_child=_forget_pool_in_child)


@contextmanager
def connection(timeout: float | None = None) -> Iterator[Connection]:
    """A pooled autocommit connection; a failure to reach Postgres becomes DatabaseUnavailable."""
    from streamspace.db.driver import UNAVAILABLE, error_line

    try:
        with pool().connection(timeout=timeout) as conn:
            yield conn
    except UNAVAILABLE as exc:
        raise DatabaseUnavailable(error_line(exc)) from exc


@contextmanager
def transaction() -> Iterator[Connection]:
    """A connection inside one transaction: everything in the block commits together or not at all."""
    with connection() as conn, conn.transaction():
        yield conn


def compose(template: str, **fragments: str) -> str:
    """A statement from `template` with `{name}` replaced by fixed SQL fragments (constants of the
    calling module, never input: values are always bound parameters)."""
    return template.format(**fragments)


def identifier(name: str) -> str:
    """A table or column name quoted for SQL (names are the calling store's constants, never input)."""
    return '"' + name.replace('"', '""') + '"'


def update_by_id(conn: Connection, table: str, row_id: str, changes: dict[str, Any]) -> None:
    """`UPDATE table SET <column> = <value>, ..., updated_at = now() WHERE id = row_id`. The table and
    column names are the calling store's constants, never input; the values are bound parameters."""
    if any(not re.fullmatch(r"\w+", column) for column in changes):
        raise ValueError(f"update_by_id: column names must be plain names: {sorted(changes)}")
    assignments = ", ".join(f"{identifier(column)} = %({column})s" for column in changes)
    conn.execute(f"UPDATE {identifier(table)} SET {assignments}, updated_at = now() WHERE id = %(id)s",  # noqa: S608
                 {**changes, "id": row_id})


def fetch_one(sql: str, params: Sequence[Any] | dict[str, Any] | None = None, *,
              timeout: float | None = None) -> dict[str, Any] | None:
    with connection(timeout) as conn:
        return conn.execute(sql, params).fetchone()


def fetch_all(sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with connection() as conn:
        return conn.execute(sql, params).fetchall()


def execute(sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> int:
    """Run one statement; returns the affected row count."""
    with connection() as conn:
        rowcount: int = conn.execute(sql, params).rowcount
        return rowcount


class HotStatement:
    """A statement of a route that runs on (nearly) every request (forward auth, heartbeat, the
    session list), run on psycopg2's C cursor with tuple rows instead of our dict-building counting
    cursor, and prepared on the server once per connection.

    Why: what each request spends besides its own work is what these routes' throughput is made of;
    a prepared statement saves Postgres parsing and planning it each time, tuples save building a
    dict per row. Everything else is the ordinary path's: the pooled connection, the values' Python
    types (the connection's typecasters), its exception classes, one counted statement per run.

    The SQL is written as for any statement (`%(name)s`, `%%` for %). With DB_PREPARED_STATEMENTS on
    (the default) it is prepared once per connection as `PREPARE streamspace_<name> AS ...` ($1,
    $2, ... for the parameters: write a cast where the context does not give a parameter's type) and
    run as `EXECUTE streamspace_<name>(...)`; off (PgBouncer in transaction mode), it is sent as is.
    """

    _names: set[str] = set()

    def __init__(self, name: str, sql: str) -> None:
        if name in HotStatement._names:
            raise ValueError(f"a hot statement named {name} exists already")
        HotStatement._names.add(name)
        self.name = f"streamspace_{name}"
        positions: dict[str, int] = {}

        def placeholder(match: re.Match[str]) -> str:
            return f"${positions.setdefault(match.group(1), len(positions) + 1)}"

        if re.search(r"%(?!\()", sql.replace("%%", "")):
            raise ValueError(f"{name}: only %(name)s placeholders are supported")
        self._prepare = f"PREPARE {self.name} AS " + re.sub(r"%\((\w+)\)s", placeholder, sql).replace("%%", "%")
        self.parameters = tuple(positions)
        self._execute = (f"EXECUTE {self.name}(" + ", ".join(["%s"] * len(self.parameters)) + ")"
                         if self.parameters else f"EXECUTE {self.name}")
        # Sent as is (prepared statements off): without parameters, psycopg2 leaves %% as it is.
        self._plain = sql if self.parameters else sql.replace("%%", "%")
        self._columns: tuple[str, ...] | None = None

    def run(self, conn: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Execute on `conn` (from `connection()` or `transaction()`); the rows as tuples, in the
        order of `columns`."""
        from streamspace.db.driver import count_statement, run_prepared

        count_statement()
        if conn.prepares:
            cursor = run_prepared(conn, self.name, self._prepare, self._execute,
                                  tuple(params[key] for key in self.parameters))
        else:
            cursor = conn.raw
            cursor.execute(self._plain, {key: params[key] for key in self.parameters} or None)
        if cursor.description is None:
            return []
        if self._columns is None:
            self._columns = tuple(column.name for column in cursor.description)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows

    def run_keyed(self, conn: Connection, params: Mapping[str, Any], key: str,
                  known: Container[Any]) -> list[tuple[Any, tuple[Any, ...] | None]]:
        """Execute like `run`; each row as (the value of its column `key`, its values), the values None
        when the key is in `known`: a caller that already holds what it makes of such a row uses that."""
        rows = self.run(conn, params)
        if not rows:
            return []
        column = self.columns.index(key)
        return [(row[column], None if row[column] is not None and row[column] in known else row) for row in rows]

    @property
    def columns(self) -> tuple[str, ...]:
        """The result's column names (known once the statement has run)."""
        if self._columns is None:
            raise RuntimeError(f"{self.name} has not run yet")
        return self._columns

    def fetch_one(self, params: Mapping[str, Any], *, timeout: float | None = None) -> dict[str, Any] | None:
        """The first row as a dict (None: no row), on a pooled connection."""
        with connection(timeout) as conn:
            rows = self.run(conn, params)
        return dict(zip(self.columns, rows[0], strict=True)) if rows else None
