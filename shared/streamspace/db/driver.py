"""The Postgres driver, psycopg2, behind our own connection, cursor and pool.

Why psycopg2 and not psycopg 3: a function's cold start is bounded by what it imports before its
first answer. `import psycopg, psycopg_pool` costs ~130-150 ms of CPU (its type adapters, its errors
module, asyncio, importlib.metadata lookups), about half of a hello world's whole start;
`import psycopg2` costs ~17 ms (docs/performance.md). Only `streamspace.db` imports this module,
lazily, on the first use of the database.

What the rest of the library sees is what psycopg 3 gave it, through psycopg2's documented
extension points (connection_factory, cursor_factory, per-connection typecasters):
- `conn.execute(sql, params)` returns the cursor; rows are plain dicts;
- `conn.transaction()`: BEGIN/COMMIT, ROLLBACK on an exception; nested, a savepoint;
- uuid columns read as uuid.UUID, bytea as bytes (psycopg2 alone: memoryview), json and jsonb
  loaded, timestamptz as aware datetimes; uuid.UUID values are sent as uuid;
- every statement run through a cursor is counted (`statements()`), for tests and benchmarks.
Connections are in autocommit: a transaction is only ever opened by `transaction()`.
"""

from __future__ import annotations

import select
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions as ext

_statements = 0


def statements() -> int:
    """How many statements our cursors (and hot statements) have run in this process."""
    return _statements


def count_statement() -> None:
    global _statements
    _statements += 1


def _bytes(value: str | None, cursor: Any) -> bytes | None:
    return None if value is None else bytes(psycopg2.BINARY(value, cursor))


def _uuid(value: str | None, _cursor: Any) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(value)


_BYTEA = ext.new_type((17,), "STREAMSPACE_BYTEA", _bytes)
_UUID = ext.new_type((2950,), "STREAMSPACE_UUID", _uuid)
# (arrays of them: bytea[] is 1001, uuid[] 2951)
_TYPECASTERS = (_BYTEA, ext.new_array_type((1001,), "STREAMSPACE_BYTEA[]", _BYTEA),
                _UUID, ext.new_array_type((2951,), "STREAMSPACE_UUID[]", _UUID))
# Adapters (Python value -> SQL) are process-wide in psycopg2; only this module registers any.
ext.register_adapter(uuid.UUID, lambda value: ext.AsIs(f"'{value}'::uuid"))

IDLE = ext.TRANSACTION_STATUS_IDLE


class Cursor(ext.cursor):  # type: ignore[misc]
    """A counting cursor whose rows are plain dicts (column name -> value)."""

    _names: tuple[str, ...] = ()

    def execute(self, query: Any, vars: Any = None) -> None:  # noqa: A002 - psycopg2's name
        count_statement()
        super().execute(query, vars)
        self._names = tuple(column.name for column in self.description) if self.description else ()

    def executemany(self, query: Any, vars_list: Any) -> None:
        """`query` once per set of parameters, in one round trip per 100 sets (psycopg2's own
        executemany makes one per set, where psycopg 3 pipelined them): each round trip counts as a
        statement, through `execute`."""
        from psycopg2.extras import execute_batch  # (~2 ms, and only the rare batch writes need it)

        execute_batch(self, query, vars_list, page_size=100)
        self._names = ()

    def fetchone(self) -> dict[str, Any] | None:
        row = super().fetchone()
        return None if row is None else dict(zip(self._names, row, strict=True))

    def fetchmany(self, size: int | None = None) -> list[dict[str, Any]]:
        names = self._names
        rows = super().fetchmany(self.arraysize if size is None else size)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def fetchall(self) -> list[dict[str, Any]]:
        names = self._names
        return [dict(zip(names, row, strict=True)) for row in super().fetchall()]

    def __iter__(self) -> Iterator[dict[str, Any]]:  # psycopg2's own iterator would bypass fetchone
        return iter(self.fetchall())


class Connection(ext.connection):  # type: ignore[misc]
    """An autocommit psycopg2 connection with psycopg 3's conveniences (see the module's docstring).
    `with connect(...) as conn:` closes it at the end of the block, as psycopg 3 did."""

    def __init__(self, dsn: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(dsn, *args, **kwargs)
        self.autocommit = True
        self.cursor_factory = Cursor
        for caster in _TYPECASTERS:
            ext.register_type(caster, self)
        self.prepares = True  # hot statements are prepared on the server (off: PgBouncer in transaction mode)
        self.prepared: set[str] = set()  # the hot statements prepared on this connection
        self.raw = ext.cursor(self)  # uncounted, tuple rows: transaction control, hot statements
        self._savepoints = 0

    def execute(self, query: Any, params: Any = None) -> Cursor:
        cursor: Cursor = self.cursor()
        cursor.execute(query, params)
        return cursor

    def in_transaction(self) -> bool:
        return bool(self.info.transaction_status != IDLE)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Everything in the block commits together or not at all; inside a transaction, the block is
        a savepoint (its failure undoes only the block)."""
        if self.in_transaction():
            self._savepoints += 1
            name = f"streamspace_{self._savepoints}"
            begin, commit = f"SAVEPOINT {name}", f"RELEASE SAVEPOINT {name}"
            rollback = f"ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}"
        else:
            begin, commit, rollback = "BEGIN", "COMMIT", "ROLLBACK"
        self.raw.execute(begin)
        try:
            yield self
        except BaseException:
            if not self.closed:
                try:
                    self.raw.execute(rollback)
                except psycopg2.Error:
                    pass  # the connection broke: the block's own error says more
            raise
        self.raw.execute(commit)

    def notifications(self, timeout: float) -> list[str]:
        """The payloads of the notifications received (after LISTEN), waiting at most `timeout`
        seconds for the first."""
        if not self.notifies and select.select([self], [], [], timeout)[0]:
            self.poll()
        elif self.notifies:
            self.poll()
        payloads = [note.payload for note in self.notifies]
        self.notifies.clear()
        return payloads

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(url: str, *, connect_timeout: int | None = None) -> Connection:
    """A new connection of ours (not pooled): `with connect(url) as conn:` closes it."""
    extra = {} if connect_timeout is None else {"connect_timeout": connect_timeout}
    conn: Connection = psycopg2.connect(url, connection_factory=Connection, **extra)
    return conn


class PoolTimeout(psycopg2.OperationalError):  # type: ignore[misc]
    """No connection came free within the pool's wait."""


class Pool:
    """At most `max_size` connections, opened on demand and kept.

    A checkout waits at most `timeout` seconds for a free connection, then raises PoolTimeout. A
    connection comes back rolled back if a transaction was left open on it, and is discarded (its slot
    freed for a new one) when it is closed or broken: the next checkout opens a fresh one. The pool
    starts no thread. After `os.fork()` the child must never use nor close this pool: its sockets
    are the parent's sessions (streamspace.db drops it in the child).
    """

    def __init__(self, connect: Callable[[], Connection], max_size: int, timeout: float) -> None:
        self._connect = connect
        self.max_size = max_size
        self.timeout = timeout
        self._idle: list[Connection] = []
        self._opened: set[Connection] = set()  # idle and in use: every connection it is answerable for
        self._opening = 0  # slots taken by connections being opened
        self._changed = threading.Condition(threading.Lock())
        self._closed = False

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[Connection]:
        conn = self._checkout(self.timeout if timeout is None else timeout)
        try:
            yield conn
        finally:
            self._checkin(conn)

    def _checkout(self, timeout: float) -> Connection:
        deadline = time.monotonic() + timeout
        while True:
            conn = self._take(deadline, timeout)
            if conn is None:
                break  # a slot for a new connection
            if _usable(conn):
                return conn
            conn.close()
            with self._changed:
                self._opened.discard(conn)
                self._changed.notify()
        try:
            conn = self._connect()
        except BaseException:
            with self._changed:
                self._opening -= 1
                self._changed.notify()
            raise
        with self._changed:
            self._opening -= 1
            self._opened.add(conn)
        return conn

    def _take(self, deadline: float, timeout: float) -> Connection | None:
        """An idle connection, or None with a slot taken for a new one; waits until `deadline`."""
        with self._changed:
            while True:
                if self._closed:
                    raise PoolTimeout("the connection pool is closed")
                if self._idle:
                    return self._idle.pop()
                if len(self._opened) + self._opening < self.max_size:
                    self._opening += 1
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PoolTimeout(f"no database connection came free within {timeout:g} s"
                                      f" (all {self.max_size} in use)")
                self._changed.wait(left)

    def _checkin(self, conn: Connection) -> None:
        if not conn.closed and conn.info.transaction_status != IDLE:
            try:  # (psycopg2's own rollback() does nothing in autocommit)
                conn.raw.execute("ROLLBACK")
            except psycopg2.Error:
                conn.close()
            if not conn.closed and conn.info.transaction_status != IDLE:
                conn.close()
        with self._changed:
            keep = not conn.closed and not self._closed
            if keep:
                self._idle.append(conn)
            else:
                self._opened.discard(conn)
            self._changed.notify()
        if not keep:
            conn.close()  # (a broken one too: that frees libpq's side of it now)

    def close(self) -> None:
        """Close the idle connections now; those in use are closed when they come back."""
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            self._opened.difference_update(idle)
            self._changed.notify_all()
        for conn in idle:
            conn.close()


def _usable(conn: Connection) -> bool:
    """Whether an idle connection still has its session. An idle connection has nothing to read
    unless the server said something on its own, such as ending the session (a restart, an
    operator's pg_terminate_backend): that is read now, so the request gets a fresh connection
    instead of an error. One poll(2) of the socket, no round trip."""
    if conn.closed:
        return False
    waiting = select.poll()
    waiting.register(conn.fileno(), select.POLLIN)
    for _ in range(3):  # the server's farewell (a FATAL notice), then the end of the stream
        events = waiting.poll(0)
        if not events:
            return conn.info.transaction_status == IDLE
        if events[0][1] & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
            return False
        try:
            conn.poll()  # reads what came (a notice, a parameter change) or raises: the session is lost
        except psycopg2.Error:
            return False
        if conn.closed:
            return False
    return False


def error_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text.strip() else type(exc).__name__


# What a connection that cannot be used raises: a request answers 503 (DatabaseUnavailable).
UNAVAILABLE = (psycopg2.OperationalError, psycopg2.InterfaceError)


def run_prepared(conn: Connection, name: str, prepare: str, execute: str, values: tuple[Any, ...]) -> Any:
    """`execute` (EXECUTE name(...)) on conn's uncounted cursor, preparing `prepare` first when this
    connection has not (or no longer has: SQLSTATE 26000, a DEALLOCATE by someone) prepared it."""
    cursor = conn.raw
    if name not in conn.prepared:
        cursor.execute(prepare)
        conn.prepared.add(name)
    try:
        cursor.execute(execute, values)
    except psycopg2.errors.InvalidSqlStatementName:
        cursor.execute(prepare)
        cursor.execute(execute, values)
    return cursor
