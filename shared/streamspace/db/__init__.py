"""Postgres access: one small pool per process, opened explicitly on first use.

Every statement goes through a counting cursor so tests and benchmarks can state how many SQL
statements a hot path costs (`statement_count()`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
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
