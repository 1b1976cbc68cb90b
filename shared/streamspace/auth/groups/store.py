"""The groups store: the only code that speaks SQL to `groups` and `group_members`. Every function
takes the caller's connection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamspace.db import compose, update_by_id
from streamspace.domain.errors import Conflict

if TYPE_CHECKING:
    from streamspace.db import Connection

    Conn = Connection

# Fixed SQL fragments composed with streamspace.db.compose (never with values: those are always parameters).
GROUP_COLUMNS = """g.id::text AS id, g.name, g.display_name, g.description, g.type, g.parent_id::text AS parent_id,
       g.created_at, g.updated_at,
       (SELECT count(*) FROM group_members c WHERE c.group_id = g.id) AS member_count"""
_FILTER = "(%(type)s::text IS NULL OR g.type = %(type)s) AND (%(parent)s::uuid IS NULL OR g.parent_id = %(parent)s)"
_MEMBER_SQL = ("SELECT m.user_id::text AS user_id, u.username, u.email, u.full_name, m.role, m.created_at"
               "  FROM group_members m JOIN users u ON u.id = m.user_id WHERE m.group_id = %s")


def _name_taken() -> Conflict:
    return Conflict("a group with this name already exists", error="group name taken")


def exists(conn: Conn, group_id: str) -> bool:
    return conn.execute("SELECT 1 FROM groups WHERE id = %s", (group_id,)).fetchone() is not None


def is_at_or_above(conn: Conn, group_id: str, start: str) -> bool:
    """Whether walking up the parents from `start` (itself included) reaches `group_id`."""
    row = conn.execute(
        "WITH RECURSIVE up(id, parent_id) AS ("
        "  SELECT id, parent_id FROM groups WHERE id = %(start)s"
        "  UNION SELECT g.id, g.parent_id FROM groups g JOIN up ON g.id = up.parent_id)"
        " SELECT EXISTS (SELECT 1 FROM up WHERE id = %(group)s) AS cycle",
        {"start": start, "group": group_id}).fetchone()
    return bool(row and row["cycle"])


def load(conn: Conn, group_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    query = compose("SELECT {cols} FROM groups g WHERE g.id = %s {lock}", cols=GROUP_COLUMNS,
                    lock="FOR UPDATE OF g" if lock else "")
    row = conn.execute(query, (group_id,)).fetchone()
    return None if row is None else dict(row)


def page(conn: Conn, *, type_: str | None, parent_id: str | None, limit: int,
         offset: int) -> tuple[list[dict[str, Any]], int]:
    params = {"type": type_, "parent": parent_id, "limit": limit, "offset": offset}
    total = conn.execute(compose("SELECT count(*) AS n FROM groups g WHERE {where}", where=_FILTER),
                         params).fetchone()
    query = compose("SELECT {cols} FROM groups g WHERE {where} ORDER BY g.name LIMIT %(limit)s OFFSET %(offset)s",
                    cols=GROUP_COLUMNS, where=_FILTER)
    rows = conn.execute(query, params).fetchall()
    return [dict(r) for r in rows], int(total["n"]) if total else 0


def of_user(conn: Conn, user_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(compose("SELECT {cols} FROM groups g JOIN group_members m ON m.group_id = g.id"
                                " WHERE m.user_id = %s ORDER BY g.name", cols=GROUP_COLUMNS), (user_id,)).fetchall()
    return [dict(r) for r in rows]


def insert(conn: Conn, name: str, display_name: str, description: str, type_: str, parent: str | None) -> str:
    """A new group's row; its id. A taken name is 409."""
    import psycopg2.errors

    try:
        row = conn.execute(
            "INSERT INTO groups (name, display_name, description, type, parent_id) VALUES (%s, %s, %s, %s, %s)"
            " RETURNING id::text AS id", (name, display_name, description, type_, parent)).fetchone()
    except psycopg2.errors.UniqueViolation:
        raise _name_taken() from None
    if row is None:
        raise RuntimeError("invariant broken: row is None")
    return str(row["id"])


def update(conn: Conn, group_id: str, changes: dict[str, Any]) -> None:
    """Set the given columns (names from the service, never from a client)."""
    update_by_id(conn, "groups", group_id, changes)


def delete(conn: Conn, group_id: str) -> None:
    conn.execute("DELETE FROM groups WHERE id = %s", (group_id,))


# -- members ------------------------------------------------------------------------------------

def members_page(conn: Conn, group_id: str, limit: int, offset: int) -> list[dict[str, Any]]:
    rows = conn.execute(_MEMBER_SQL + " ORDER BY u.username LIMIT %s OFFSET %s", (group_id, limit, offset)).fetchall()
    return [dict(r) for r in rows]


def member(conn: Conn, group_id: str, user_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    row = conn.execute(_MEMBER_SQL + " AND m.user_id = %s" + (" FOR UPDATE OF m" if lock else ""),
                       (group_id, user_id)).fetchone()
    return None if row is None else dict(row)


def add_member(conn: Conn, group_id: str, user_id: str, role: str) -> bool:
    """False when the user already was a member (nothing changed)."""
    inserted = conn.execute(
        "INSERT INTO group_members (group_id, user_id, role) VALUES (%s, %s, %s)"
        " ON CONFLICT (group_id, user_id) DO NOTHING RETURNING 1", (group_id, user_id, role)).fetchone()
    return inserted is not None


def set_member_role(conn: Conn, group_id: str, user_id: str, role: str) -> None:
    conn.execute("UPDATE group_members SET role = %s WHERE group_id = %s AND user_id = %s", (role, group_id, user_id))


def remove_member(conn: Conn, group_id: str, user_id: str) -> str | None:
    """The removed member's user id, None when there was no such member."""
    row = conn.execute("DELETE FROM group_members WHERE group_id = %s AND user_id = %s"
                       " RETURNING user_id::text AS user_id", (group_id, user_id)).fetchone()
    return None if row is None else str(row["user_id"])
