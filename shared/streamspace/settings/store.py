"""The platform settings store: the only code that speaks SQL to the `configuration` table (one row
per key that was ever set; a missing row means the key's default)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from streamspace.db import fetch_all

if TYPE_CHECKING:
    from streamspace.db import Connection

    Conn = Connection


def stored_values() -> dict[str, Any]:
    """Every stored key -> its value. One query."""
    return {row["key"]: row["value"] for row in fetch_all("SELECT key, value FROM configuration")}


def lock_values(conn: Conn, keys: list[str]) -> dict[str, Any]:
    """The stored values of `keys`, their rows locked until the caller's transaction ends."""
    rows = conn.execute("SELECT key, value FROM configuration WHERE key = ANY(%s) FOR UPDATE", (keys,)).fetchall()
    return {row["key"]: row["value"] for row in rows}


def put(conn: Conn, key: str, value: Any, updated_by: str) -> None:
    conn.execute(
        "INSERT INTO configuration (key, value, updated_at, updated_by) VALUES (%s, %s::jsonb, now(), %s)"
        " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now(),"
        " updated_by = EXCLUDED.updated_by",
        (key, json.dumps(value), updated_by),
    )


def put_unless_changed_by_admin(conn: Conn, key: str, value: Any, updated_by: str, install_prefix: str) -> bool:
    """Set `key` for the install unless a person has set it since (their username is its updated_by);
    True when the stored value changed."""
    row = conn.execute(
        "UPDATE configuration SET value = %s::jsonb, updated_at = now(), updated_by = %s"
        " WHERE key = %s AND (updated_by IS NULL OR updated_by LIKE %s) AND value <> %s::jsonb RETURNING 1",
        (json.dumps(value), updated_by, key, install_prefix + "%", json.dumps(value))).fetchone()
    return row is not None
