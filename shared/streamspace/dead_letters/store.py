"""The SQL of dead letters. Only this module speaks SQL to the dead_letters table."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamspace.db import Connection

STATUSES = ("open", "handled", "retried")

_COLUMNS = ("id, event_id, event_source, event_type, subject, event_time, attributes, data, data_content_type,"
            " error_code, error_dest, error_data, status, times_dead, first_dead_at, last_dead_at, resolved_by,"
            " resolved_at, note")


def insert(conn: Connection, row: dict[str, Any]) -> str:
    """Record one dead letter; returns what happened: recorded | duplicate | reopened.

    Idempotent by (source, id): the same dead letter delivered twice is one row. Only a letter an admin
    retried comes back to life when it dies again (its new failure replaces the old one)."""
    found = conn.execute(
        "INSERT INTO dead_letters (event_id, event_source, event_type, subject, event_time, attributes, data,"
        "                          data_content_type, error_code, error_dest, error_data)"
        " VALUES (%(event_id)s, %(event_source)s, %(event_type)s, %(subject)s, %(event_time)s,"
        "         %(attributes)s::jsonb, %(data)s, %(data_content_type)s, %(error_code)s, %(error_dest)s,"
        "         %(error_data)s)"
        " ON CONFLICT (event_source, event_id) DO UPDATE SET"
        "   status = 'open', times_dead = dead_letters.times_dead + 1, last_dead_at = now(),"
        "   error_code = EXCLUDED.error_code, error_dest = EXCLUDED.error_dest, error_data = EXCLUDED.error_data,"
        "   attributes = EXCLUDED.attributes, resolved_by = NULL, resolved_at = NULL"
        " WHERE dead_letters.status = 'retried'"
        " RETURNING (xmax = 0) AS inserted",
        {**row, "attributes": json.dumps(row["attributes"])}).fetchone()
    if found is None:
        return "duplicate"
    return "recorded" if found["inserted"] else "reopened"


def page(conn: Connection, status: str | None, limit: int,
         offset: int) -> tuple[int, list[dict[str, Any]]]:
    """(total, rows) newest death first, optionally of one status."""
    total = conn.execute("SELECT count(*) AS n FROM dead_letters WHERE %(status)s::text IS NULL OR status = %(status)s",
                         {"status": status}).fetchone()
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM dead_letters WHERE %(status)s::text IS NULL OR status = %(status)s"  # noqa: S608
        " ORDER BY last_dead_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s",
        {"status": status, "limit": limit, "offset": offset}).fetchall()
    return (int(total["n"]) if total else 0), [dict(r) for r in rows]


def get(conn: Connection, letter_id: int, *, lock: bool = False) -> dict[str, Any] | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM dead_letters WHERE id = %s"  # noqa: S608
                       + (" FOR UPDATE" if lock else ""), (letter_id,)).fetchone()
    return dict(row) if row else None


def resolve(conn: Connection, letter_id: int, status: str, actor: str, note: str) -> None:
    conn.execute("UPDATE dead_letters SET status = %s, resolved_by = %s, resolved_at = now(), note = %s"
                 " WHERE id = %s", (status, actor, note, letter_id))


def counts(conn: Connection) -> dict[str, int]:
    """How many dead letters there are in each status (every status named, zero when none)."""
    rows = conn.execute("SELECT status, count(*) AS n FROM dead_letters GROUP BY status").fetchall()
    found = {str(r["status"]): int(r["n"]) for r in rows}
    return {status: found.get(status, 0) for status in STATUSES}
