"""The quotas store: the only code that speaks SQL to `user_quotas` and `group_quotas`, and the
usage sums a quota compares against.

Usage is derived from the sessions index, never a counter: a session holds resources while its
state is `running` or `hibernated`. The sums read `session_holdings`, the view the sessions package
publishes for it (migration 0022): that package sits above quotas and calls them, so quotas cannot
call its store (tests/test_architecture.py). Every function takes the caller's connection.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from streamspace.db import compose, identifier
from streamspace.domain.quotas import GROUP_DEFAULTS, LIMIT_COLUMNS, NO_USAGE, USER_DEFAULTS, Limits, Usage

if TYPE_CHECKING:
    from streamspace.db import Connection

    Conn = Connection

# A fixed SQL fragment, composed with streamspace.db.compose (values are always parameters).
_USAGE_COLUMNS = ("count(*) AS sessions, coalesce(sum(s.cpu_millis), 0) AS cpu_millis,"
                  " coalesce(sum(s.memory_bytes), 0) AS memory_bytes,"
                  " coalesce(sum(s.storage_bytes), 0) AS storage_bytes")
_LIMITS = "q.max_sessions, q.max_cpu_millis, q.max_memory_bytes, q.max_storage_bytes, q.created_at, q.updated_at"


def _limits(row: dict[str, Any] | None, defaults: Limits) -> Limits:
    """A quota row's limits; the documented default for a column nobody set (or no row)."""
    def pick(column: str, default: int) -> int:
        value = row.get(column) if row else None
        return default if value is None else int(value)

    return Limits(*(pick(column, getattr(defaults, column)) for column in LIMIT_COLUMNS))


def _usage(row: dict[str, Any] | None) -> Usage:
    if row is None:
        return NO_USAGE
    return Usage(int(row["sessions"]), int(row["cpu_millis"]), int(row["memory_bytes"]), int(row["storage_bytes"]))


def in_transaction(conn: Conn) -> bool:
    return conn.in_transaction()


def group_ids_of(conn: Conn, user_id: str) -> list[str]:
    rows = conn.execute("SELECT group_id::text AS id FROM group_members WHERE user_id = %s", (user_id,)).fetchall()
    return sorted(str(r["id"]) for r in rows)


def _lock_key(text: str) -> int:
    """A signed 64-bit advisory lock key for `text` (stable across processes and versions)."""
    return int.from_bytes(hashlib.sha256(("streamspace.quota:" + text).encode()).digest()[:8], "big", signed=True)


def lock_scopes(conn: Conn, user_id: str, group_ids: list[str]) -> None:
    """Transaction-scoped advisory locks on the user and each group, always in the same sorted
    order, so two creators never deadlock and the second sees the first's row."""
    keys = sorted({_lock_key("user:" + str(user_id))} | {_lock_key("group:" + g) for g in group_ids})
    conn.execute("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(%s::bigint[]) AS k", (keys,))


def user_limits(conn: Conn, user_id: str) -> Limits:
    return _limits(conn.execute("SELECT * FROM user_quotas WHERE user_id = %s", (user_id,)).fetchone(), USER_DEFAULTS)


def user_usage(conn: Conn, user_id: str) -> Usage:
    row = conn.execute(
        compose("SELECT {usage} FROM session_holdings s WHERE s.user_id = %s", usage=_USAGE_COLUMNS),
        (user_id,)).fetchone()
    return _usage(row)


def group_usage(conn: Conn, group_id: str) -> Usage:
    row = conn.execute(
        compose("SELECT {usage} FROM session_holdings s JOIN group_members gm ON gm.user_id = s.user_id"
                " WHERE gm.group_id = %s", usage=_USAGE_COLUMNS),
        (group_id,)).fetchone()
    return _usage(row)


def groups_of_user(conn: Conn, user_id: str) -> list[tuple[str, str, Limits, Usage]]:
    """(id, name, limits, usage) of each group the user is in, by name."""
    rows = conn.execute(
        "SELECT g.id::text AS id, g.name, q.max_sessions, q.max_cpu_millis, q.max_memory_bytes, q.max_storage_bytes"
        "  FROM group_members gm JOIN groups g ON g.id = gm.group_id"
        "  LEFT JOIN group_quotas q ON q.group_id = g.id"
        " WHERE gm.user_id = %s ORDER BY g.name", (user_id,)).fetchall()
    if not rows:
        return []
    usage_rows = conn.execute(
        compose("SELECT gm.group_id::text AS id, {usage}"
                "  FROM group_members gm JOIN session_holdings s ON s.user_id = gm.user_id"
                " WHERE gm.group_id = ANY(%s::uuid[]) GROUP BY gm.group_id", usage=_USAGE_COLUMNS),
        ([r["id"] for r in rows],)).fetchall()
    usage_by_group = {r["id"]: _usage(r) for r in usage_rows}
    return [(r["id"], r["name"], _limits(r, GROUP_DEFAULTS), usage_by_group.get(r["id"], NO_USAGE)) for r in rows]


def user_quota_row(conn: Conn, user_id: str) -> dict[str, Any] | None:
    """{username, limits, used, created_at, updated_at} of a user, None for an unknown user."""
    row = conn.execute(compose("SELECT u.username, {limits}"
                               "  FROM users u LEFT JOIN user_quotas q ON q.user_id = u.id WHERE u.id = %s",
                               limits=_LIMITS), (user_id,)).fetchone()
    if row is None:
        return None
    return {"username": row["username"], "limits": _limits(row, USER_DEFAULTS), "used": user_usage(conn, user_id),
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


def group_quota_row(conn: Conn, group_id: str) -> dict[str, Any] | None:
    """{id, name, limits, used, created_at, updated_at} of a group, None for an unknown group."""
    row = conn.execute(compose("SELECT g.id::text AS id, g.name, {limits}"
                               "  FROM groups g LEFT JOIN group_quotas q ON q.group_id = g.id WHERE g.id = %s",
                               limits=_LIMITS), (group_id,)).fetchone()
    if row is None:
        return None
    return {"id": row["id"], "name": row["name"], "limits": _limits(row, GROUP_DEFAULTS),
            "used": group_usage(conn, group_id), "created_at": row["created_at"], "updated_at": row["updated_at"]}


def user_quota_page(conn: Conn, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Every user's quota row (defaults where none was set) by username, in one query, and the
    number of users."""
    total = conn.execute("SELECT count(*) AS n FROM users").fetchone()
    rows = conn.execute(
        compose("SELECT u.username, {limits}, used.*"
                "  FROM users u LEFT JOIN user_quotas q ON q.user_id = u.id"
                "  CROSS JOIN LATERAL (SELECT {usage} FROM session_holdings s WHERE s.user_id = u.id) used"
                " ORDER BY u.username LIMIT %s OFFSET %s", limits=_LIMITS, usage=_USAGE_COLUMNS),
        (limit, offset)).fetchall()
    page = [{"username": r["username"], "limits": _limits(r, USER_DEFAULTS), "used": _usage(r),
             "created_at": r["created_at"], "updated_at": r["updated_at"]} for r in rows]
    return page, int(total["n"]) if total else 0


def _set_limits(conn: Conn, table: str, key_column: str, key: str, limits: dict[str, int | None]) -> None:
    columns = [c for c in LIMIT_COLUMNS if c in limits]
    insert_cols = [identifier(key_column), *(identifier(c) for c in columns)]
    updates = [*(f"{identifier(c)} = EXCLUDED.{identifier(c)}" for c in columns), "updated_at = now()"]
    statement = compose("INSERT INTO {table} ({cols}) VALUES ({vals}) ON CONFLICT ({key}) DO UPDATE SET {updates}",
                        table=identifier(table), cols=", ".join(insert_cols), vals=", ".join(["%s"] * len(insert_cols)),
                        key=identifier(key_column), updates=", ".join(updates))
    conn.execute(statement, (key, *(limits[c] for c in columns)))


def set_user_limits(conn: Conn, user_id: str, limits: dict[str, int | None]) -> None:
    """Upsert the given limit columns of the user's quota row (others unchanged)."""
    _set_limits(conn, "user_quotas", "user_id", user_id, limits)


def set_group_limits(conn: Conn, group_id: str, limits: dict[str, int | None]) -> None:
    _set_limits(conn, "group_quotas", "group_id", group_id, limits)


def delete_user_limits(conn: Conn, user_id: str) -> None:
    conn.execute("DELETE FROM user_quotas WHERE user_id = %s", (user_id,))


def user_id_by_name(conn: Conn, username: str) -> str | None:
    row = conn.execute("SELECT id::text AS id FROM users WHERE username = %s", (username,)).fetchone()
    return None if row is None else str(row["id"])
