"""Postgres access: one small pool per process, opened explicitly on first use.

Every statement goes through a counting cursor so tests and benchmarks can state how many SQL
statements a hot path costs (`statement_count()`); the few statements of the hottest routes are
`HotStatement`s, counted the same way.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Container, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from streamspace.config import environment
from streamspace.db.embedded import embedded_database_url
from streamspace.domain.errors import Unavailable

if TYPE_CHECKING:  # psycopg costs ~100 ms to import: only paths that touch the database pay it
    import psycopg
    from psycopg_pool import ConnectionPool

_lock = threading.Lock()
_pool: ConnectionPool | None = None
_statements = 0


class DatabaseUnavailable(Unavailable):
    """Postgres cannot be reached; HTTP answers 503 and CloudEvent handlers ask for a retry."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error="database unavailable")


def statement_count() -> int:
    return _statements


def _counting_connection_class() -> type[psycopg.Connection[Any]]:
    import psycopg

    class CountingCursor(psycopg.Cursor[Any]):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
            global _statements
            _statements += 1
            return super().execute(query, params, **kwargs)

        def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:  # type: ignore[override]
            global _statements
            _statements += 1
            super().executemany(query, params_seq, **kwargs)

    class CountingConnection(psycopg.Connection[Any]):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # psycopg sets cursor_factory on the instance; a class attribute alone is never used.
            self.cursor_factory = CountingCursor

    return CountingConnection


def database_url() -> str:
    url = environment().database_url
    if url is None:

        url = embedded_database_url(environment().data_dir)
    return url


def pool() -> ConnectionPool:
    global _pool
    if _pool is None:
        with _lock:
            if _pool is None:
                from psycopg_pool import ConnectionPool


                cfg = environment()
                size = cfg.db_pool_size
                _pool = ConnectionPool(
                    database_url(),
                    min_size=1,
                    max_size=size,
                    open=True,
                    # A request waits at most this long for a connection: with the database down it
                    # answers 503 (Retry-After) in about 2 s instead of holding its worker for 10 s.
                    timeout=cfg.db_pool_timeout_seconds,
                    connection_class=_counting_connection_class(),
                    kwargs={"autocommit": True, "row_factory": _dict_row(),
                            "prepare_threshold": 5 if cfg.db_prepared_statements else None,
                            "connect_timeout": max(1, round(cfg.db_pool_timeout_seconds))},
                    name="streamspace",
                )
    return _pool


def _dict_row() -> Any:
    from psycopg.rows import dict_row

    return dict_row


def close_pool() -> None:
    global _pool
    with _lock:
        if _pool is not None:
            _pool.close()
            _pool = None


@contextmanager
def connection(timeout: float | None = None) -> Iterator[psycopg.Connection[Any]]:
    """A pooled autocommit connection; a failure to reach Postgres becomes DatabaseUnavailable."""
    import psycopg
    from psycopg_pool import PoolTimeout

    try:
        with pool().connection(timeout=timeout) as conn:
            yield conn
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise DatabaseUnavailable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc


@contextmanager
def transaction() -> Iterator[psycopg.Connection[Any]]:
    """A connection inside one transaction: everything in the block commits together or not at all."""
    with connection() as conn, conn.transaction():
        yield conn


def compose(template: str, **fragments: str) -> Any:
    """A statement from `template` with `{name}` replaced by fixed SQL fragments (constants of the
    calling module, never input: values are always bound parameters)."""
    from psycopg import sql

    return sql.SQL(template).format(**{k: sql.SQL(v) for k, v in fragments.items()})  # type: ignore[arg-type]


def update_by_id(conn: psycopg.Connection[Any], table: str, row_id: str, changes: dict[str, Any]) -> None:
    """`UPDATE table SET <column> = <value>, ..., updated_at = now() WHERE id = row_id`. The table and
    column names are the calling store's constants, never input; the values are bound parameters."""
    from psycopg import sql

    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column)) for column in changes)
    conn.execute(sql.SQL("UPDATE {} SET {}, updated_at = now() WHERE id = %(id)s").format(sql.Identifier(table),
                                                                                         assignments),
                 {**changes, "id": row_id})


def fetch_one(sql: str, params: Sequence[Any] | dict[str, Any] | None = None, *,
              timeout: float | None = None) -> dict[str, Any] | None:
    with connection(timeout) as conn:
        row: dict[str, Any] | None = conn.execute(sql, params).fetchone()  # type: ignore[arg-type]
        return row


def fetch_all(sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with connection() as conn:
        return list(conn.execute(sql, params).fetchall())  # type: ignore[arg-type]


def execute(sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> int:
    """Run one statement; returns the affected row count."""
    with connection() as conn:
        return conn.execute(sql, params).rowcount  # type: ignore[arg-type]


class HotStatement:
    """A statement of a route that runs on (nearly) every request (forward auth, heartbeat, the
    session list), run straight through libpq instead of psycopg's cursor.

    Why: psycopg's cursor costs some 60-90 us of CPU per statement in our process (cursor and
    transformer set-up, query conversion, its non-blocking wait loop, dict rows), about as much as
    everything else our forward-auth check does; libpq's blocking call (it releases the GIL while it
    waits) with psycopg's own loaders costs about a third of that. Everything else stays psycopg's:
    the pooled connection, the values' Python types (psycopg's loaders decode the result), its
    exception classes (a server error raises what the cursor would raise).

    The SQL is written as for psycopg (`%(name)s`); every parameter goes as text for the server to
    parse into the type the statement gives it (write a cast where the context does not say), bytes
    as binary (bytea). With DB_PREPARED_STATEMENTS on (the default) the statement is prepared once
    per connection under `name`; off (PgBouncer in transaction mode), it is sent unnamed each time.
    """

    _names: set[str] = set()

    def __init__(self, name: str, sql: str) -> None:
        if name in HotStatement._names:
            raise ValueError(f"a hot statement named {name} exists already")
        HotStatement._names.add(name)
        self.name = f"streamspace_{name}".encode()
        positions: dict[str, int] = {}

        def placeholder(match: re.Match[str]) -> str:
            return f"${positions.setdefault(match.group(1), len(positions) + 1)}"

        if re.search(r"%(?!\()", sql.replace("%%", "")):
            raise ValueError(f"{name}: only %(name)s placeholders are supported")
        self.sql = re.sub(r"%\((\w+)\)s", placeholder, sql).replace("%%", "%").encode()
        self.parameters = tuple(positions)
        self._columns: tuple[str, ...] | None = None

    def _values(self, params: Mapping[str, Any]) -> tuple[list[bytes | None], list[int]]:
        values: list[bytes | None] = []
        formats: list[int] = []
        for key in self.parameters:
            value = params[key]
            if isinstance(value, bytes):
                values.append(value)
                formats.append(1)
                continue
            if value is None:
                values.append(None)
            elif isinstance(value, bool):
                values.append(b"true" if value else b"false")
            elif isinstance(value, (str, int)):
                values.append(str(value).encode())
            else:
                raise TypeError(f"{self.name.decode()}: parameter {key} is a {type(value).__name__}")
            formats.append(0)
        return values, formats

    def run(self, conn: psycopg.Connection[Any], params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Execute on `conn` (from `connection()` or `transaction()`); the rows as tuples, in the
        order of `columns`."""
        result, transformer = self._execute(conn, params)
        if result is None:
            return []
        try:
            return transformer.load_rows(0, result.ntuples, tuple)  # type: ignore[no-any-return]
        finally:
            transformer.set_pgresult(None)

    def run_keyed(self, conn: psycopg.Connection[Any], params: Mapping[str, Any], key: str,
                  known: Container[bytes]) -> list[tuple[bytes | None, tuple[Any, ...] | None]]:
        """Execute like `run`; each row as (the raw bytes of its column `key`, its values), the values
        left undecoded (None) when the key is in `known`: a caller that already holds what it makes
        of such a row skips decoding it."""
        result, transformer = self._execute(conn, params)
        if result is None:
            return []
        column = self.columns.index(key)
        try:
            rows: list[tuple[bytes | None, tuple[Any, ...] | None]] = []
            for index in range(result.ntuples):
                raw = result.get_value(index, column)
                rows.append((raw, None if raw is not None and raw in known else transformer.load_row(index, tuple)))
            return rows
        finally:
            transformer.set_pgresult(None)

    def _execute(self, conn: psycopg.Connection[Any], params: Mapping[str, Any]) -> tuple[Any, Any]:
        """(the result with rows, a decoder set to it) or (None, None) when no row came."""
        import psycopg
        from psycopg import pq

        global _statements
        _statements += 1
        values, formats = self._values(params)
        pgconn = conn.pgconn
        state: tuple[set[bytes], Any] | None = conn.__dict__.get("_streamspace_hot")
        if state is None:  # per connection: the statements prepared on it, and a decoder
            state = conn.__dict__["_streamspace_hot"] = (set(), psycopg.adapt.Transformer(conn))
        prepared, transformer = state
        with conn.lock:
            # (None is SQL NULL for libpq, as psycopg itself passes it; its stubs do not say so)
            if conn.prepare_threshold is None:
                result = pgconn.exec_params(self.sql, values, param_formats=formats)  # type: ignore[arg-type]
            else:
                if self.name not in prepared:
                    _raise_for(pgconn, pgconn.prepare(self.name, self.sql, None), conn)
                    prepared.add(self.name)
                result = pgconn.exec_prepared(self.name, values, param_formats=formats)  # type: ignore[arg-type]
                if result.error_field(pq.DiagnosticField.SQLSTATE) == b"26000":  # deallocated by someone
                    _raise_for(pgconn, pgconn.prepare(self.name, self.sql, None), conn)
                    result = pgconn.exec_prepared(self.name, values, param_formats=formats)  # type: ignore[arg-type]
            _raise_for(pgconn, result, conn)
        if result.status != pq.ExecStatus.TUPLES_OK:
            return None, None
        if self._columns is None:
            self._columns = tuple((result.fname(i) or b"").decode() for i in range(result.nfields))
        if not result.ntuples:
            return None, None
        transformer.set_pgresult(result)
        return result, transformer

    @property
    def columns(self) -> tuple[str, ...]:
        """The result's column names (known once the statement has run)."""
        if self._columns is None:
            raise RuntimeError(f"{self.name.decode()} has not run yet")
        return self._columns

    def fetch_one(self, params: Mapping[str, Any], *, timeout: float | None = None) -> dict[str, Any] | None:
        """The first row as a dict (None: no row), on a pooled connection."""
        with connection(timeout) as conn:
            rows = self.run(conn, params)
        return dict(zip(self.columns, rows[0], strict=True)) if rows else None


def _raise_for(pgconn: Any, result: Any, conn: psycopg.Connection[Any]) -> None:
    """Raise what psycopg's cursor would for a failed `result`."""
    import psycopg
    from psycopg import pq

    if result.status in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
        return
    if pgconn.status != pq.ConnStatus.OK:  # the server went away: the pool replaces this connection
        raise psycopg.OperationalError(pgconn.get_error_message() or "the connection to the server was lost")
    raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)
