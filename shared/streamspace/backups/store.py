"""The `backups` table: the only code that speaks SQL to it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from streamspace.db import connect, connection, execute, fetch_all, fetch_one

COLUMNS = ("id, status, trigger, requested_by, started_at, finished_at, manifest_key, size_bytes, sha256,"
           " templates, sessions, error")
# Session-level advisory lock key of the backup lease ("SSBK").
LEASE_KEY = 0x5353424B


def try_lease(conn: Any) -> bool:
    """Take the backup lease on this connection; False when another run holds it. It ends with the
    connection (a crashed run never blocks the next) or with release_lease."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s) AS taken", (LEASE_KEY,)).fetchone()
    return bool(row["taken"])


def release_lease(conn: Any) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s)", (LEASE_KEY,))


def lease_held_elsewhere() -> bool:
    """Whether a run holds the lease now (a hint for refusing a request early; the run itself decides)."""
    with connection() as conn:
        if not try_lease(conn):
            return True
        release_lease(conn)
        return False


def mark_interrupted() -> int:
    """Rows left running by a run that died (only called while holding the lease)."""
    return execute("UPDATE backups SET status = 'failed', finished_at = now(),"
                   " error = 'interrupted: the run ended before it finished' WHERE status = 'running'")


def insert_running(backup_id: str, trigger: str, requested_by: str | None, manifest_key: str) -> None:
    execute("INSERT INTO backups (id, status, trigger, requested_by, manifest_key) VALUES (%s, 'running', %s, %s, %s)",
            (backup_id, trigger, requested_by, manifest_key))


def finish_succeeded(backup_id: str, size: int, sha256: str, templates: int, sessions: int) -> None:
    execute("UPDATE backups SET status = 'succeeded', finished_at = now(), size_bytes = %s, sha256 = %s,"
            " templates = %s, sessions = %s WHERE id = %s", (size, sha256, templates, sessions, backup_id))


def finish_failed(backup_id: str, error: str) -> None:
    execute("UPDATE backups SET status = 'failed', finished_at = now(), error = %s WHERE id = %s",
            (error[:2000], backup_id))


def get(backup_id: str) -> dict[str, Any] | None:
    return fetch_one(f"SELECT {COLUMNS} FROM backups WHERE id = %s", (backup_id,))  # noqa: S608 - constant


def list_recent(limit: int, before: datetime | None = None) -> list[dict[str, Any]]:
    return fetch_all(f"SELECT {COLUMNS} FROM backups WHERE %s::timestamptz IS NULL OR started_at < %s"  # noqa: S608
                     " ORDER BY started_at DESC, id DESC LIMIT %s", (before, before, limit))


def succeeded() -> list[dict[str, Any]]:
    return fetch_all("SELECT id, started_at, manifest_key FROM backups WHERE status = 'succeeded'")


def failed_before(days: int) -> list[dict[str, Any]]:
    return fetch_all("SELECT id, manifest_key FROM backups WHERE status = 'failed'"
                     " AND started_at < now() - make_interval(days => %s)", (days,))


def delete(backup_id: str, conn: Any = None) -> bool:
    """Remove a finished run's row (on `conn` when given: the caller's transaction)."""
    sql = "DELETE FROM backups WHERE id = %s AND status <> 'running'"
    if conn is not None:
        return bool(conn.execute(sql, (backup_id,)).rowcount == 1)
    return execute(sql, (backup_id,)) == 1


def last_outcomes() -> dict[str, Any]:
    """The newest success and the newest run, for the backup metrics an alert reads."""
    row = fetch_one("SELECT (SELECT max(finished_at) FROM backups WHERE status = 'succeeded') AS last_success,"
                    " (SELECT status FROM backups ORDER BY started_at DESC LIMIT 1) AS last_status")
    return row or {}


def mark_restored_from(database_url: str, backup_id: str, size: int, sha256: str, templates: int,
                       sessions: int) -> None:
    """In a database just restored from a backup: that backup's own row was dumped while it ran;
    record it as it ended, so the restored list shows the backup it came from as succeeded."""
    with connect(database_url) as conn:
        conn.execute("UPDATE backups SET status = 'succeeded', finished_at = coalesce(finished_at, now()),"
                     " size_bytes = %s, sha256 = %s, templates = %s, sessions = %s, error = NULL WHERE id = %s",
                     (size, sha256, templates, sessions, backup_id))
