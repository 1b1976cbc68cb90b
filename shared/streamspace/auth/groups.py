"""Groups and memberships (admin operations), each write in one transaction with its audit row."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from streamspace import audit
from streamspace.auth.users import load_user, parse_uuid, valid_text
from streamspace.db import compose, connection, transaction
from streamspace.domain.errors import Conflict, NotFound, ValidationError

if TYPE_CHECKING:
    import psycopg

    from streamspace.auth.principal import Principal

GROUP_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
GROUP_TYPE_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
MEMBER_ROLES = ("member", "admin", "owner")

GROUP_COLUMNS = """g.id::text AS id, g.name, g.display_name, g.description, g.type, g.parent_id::text AS parent_id,
       g.created_at, g.updated_at,
       (SELECT count(*) FROM group_members c WHERE c.group_id = g.id) AS member_count"""

CREATE_FIELDS = frozenset({"name", "displayName", "description", "type", "parentId"})
UPDATE_FIELDS = frozenset({"displayName", "description", "type", "parentId"})
MEMBER_FIELDS = frozenset({"userId", "role"})


def group_to_api(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "displayName": row["display_name"],
            "description": row["description"], "type": row["type"], "parentId": row["parent_id"],
            "memberCount": int(row["member_count"]), "createdAt": row["created_at"], "updatedAt": row["updated_at"]}


def valid_group_name(value: object) -> str:
    if not isinstance(value, str) or not GROUP_NAME_RE.fullmatch(value):
        raise ValidationError("name", "expected 1-63 letters, digits, '.', '_' or '-', starting and ending with a"
                                      " letter or digit")
    return value


def valid_group_type(value: object) -> str:
    if not isinstance(value, str) or not GROUP_TYPE_RE.fullmatch(value):
        raise ValidationError("type", "expected a lowercase word such as team, department or project")
    return value


def valid_member_role(value: object) -> str:
    if value not in MEMBER_ROLES:
        raise ValidationError("role", f"expected one of {', '.join(MEMBER_ROLES)}")
    return str(value)


def _parent_id(conn: psycopg.Connection[Any], value: object, group_id: str | None) -> str | None:
    """Validate a parentId: null, or an existing group that is not this group nor below it."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError("parentId", "expected a group id or null")
    try:
        parent = parse_uuid(value, "group")
    except NotFound:
        raise ValidationError("parentId", "no such group") from None
    if conn.execute("SELECT 1 FROM groups WHERE id = %s", (parent,)).fetchone() is None:
        raise ValidationError("parentId", "no such group")
    if group_id is not None:
        # Walk up from the new parent: reaching this group would make a cycle.
        row = conn.execute(
            "WITH RECURSIVE up(id, parent_id) AS ("
            "  SELECT id, parent_id FROM groups WHERE id = %(parent)s"
            "  UNION SELECT g.id, g.parent_id FROM groups g JOIN up ON g.id = up.parent_id)"
            " SELECT EXISTS (SELECT 1 FROM up WHERE id = %(group)s) AS cycle",
            {"parent": parent, "group": group_id}).fetchone()
        if row and row["cycle"]:
            raise ValidationError("parentId", "a group cannot be its own ancestor")
    return parent


def load_group(conn: psycopg.Connection[Any], group_id: str, *, lock: bool = False) -> dict[str, Any]:
    query = compose("SELECT {cols} FROM groups g WHERE g.id = %s {lock}", cols=GROUP_COLUMNS,
                    lock="FOR UPDATE OF g" if lock else "")
    row = conn.execute(query, (parse_uuid(group_id, "group"),)).fetchone()
    if row is None:
        raise NotFound("no such group", error="not found")
    return dict(row)


def list_groups(*, type_: str | None, parent_id: str | None, limit: int, offset: int) -> dict[str, Any]:
    if parent_id is not None:
        try:
            parent_id = parse_uuid(parent_id, "group")
        except NotFound:
            raise ValidationError("parentId", "expected a group id") from None
    where = "(%(type)s::text IS NULL OR g.type = %(type)s) AND (%(parent)s::uuid IS NULL OR g.parent_id = %(parent)s)"
    params = {"type": type_, "parent": parent_id, "limit": limit, "offset": offset}
    with connection() as conn:
        total = conn.execute(compose("SELECT count(*) AS n FROM groups g WHERE {where}", where=where),
                             params).fetchone()
        query = compose("SELECT {cols} FROM groups g WHERE {where} ORDER BY g.name LIMIT %(limit)s OFFSET %(offset)s",
                        cols=GROUP_COLUMNS, where=where)
        rows = conn.execute(query, params).fetchall()
    return {"groups": [group_to_api(r) for r in rows], "total": int(total["n"]) if total else 0}


def get_group(group_id: str) -> dict[str, Any]:
    with connection() as conn:
        return group_to_api(load_group(conn, group_id))


def _name_taken(exc: Exception) -> Conflict:
    return Conflict("a group with this name already exists", error="group name taken")


def create_group(actor: Principal, body: dict[str, Any], client_ip: str) -> dict[str, Any]:
    import psycopg


    name = valid_group_name(body.get("name"))
    display_name = valid_text(body.get("displayName", "") or "", "displayName")
    description = valid_text(body.get("description", "") or "", "description", 2000)
    type_ = valid_group_type(body.get("type", "team"))
    try:
        with transaction() as conn:
            parent = _parent_id(conn, body.get("parentId"), None)
            row = conn.execute(
                "INSERT INTO groups (name, display_name, description, type, parent_id) VALUES (%s, %s, %s, %s, %s)"
                " RETURNING id::text AS id", (name, display_name, description, type_, parent)).fetchone()
            if row is None:
                raise RuntimeError("invariant broken: row is None")
            audit.record(conn, actor, "group.create", "group", name, client_ip, {"id": row["id"], "type": type_})
            return group_to_api(load_group(conn, row["id"]))
    except psycopg.errors.UniqueViolation as exc:
        raise _name_taken(exc) from None


def update_group(actor: Principal, group_id: str, body: dict[str, Any], client_ip: str) -> dict[str, Any]:
    from psycopg import sql


    changes: dict[str, Any] = {}
    if "displayName" in body:
        changes["display_name"] = valid_text(body["displayName"] or "", "displayName")
    if "description" in body:
        changes["description"] = valid_text(body["description"] or "", "description", 2000)
    if "type" in body:
        changes["type"] = valid_group_type(body["type"])
    with transaction() as conn:
        before = load_group(conn, group_id, lock=True)
        if "parentId" in body:
            changes["parent_id"] = _parent_id(conn, body["parentId"], before["id"])
        if not changes:
            return group_to_api(before)
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column)) for column in changes)
        conn.execute(sql.SQL("UPDATE groups SET {}, updated_at = now() WHERE id = %(id)s").format(assignments),
                     {**changes, "id": before["id"]})
        audit.record(conn, actor, "group.update", "group", before["name"], client_ip, changes)
        return group_to_api(load_group(conn, before["id"]))


def delete_group(actor: Principal, group_id: str, client_ip: str) -> None:
    with transaction() as conn:
        before = load_group(conn, group_id, lock=True)
        conn.execute("DELETE FROM groups WHERE id = %s", (before["id"],))
        audit.record(conn, actor, "group.delete", "group", before["name"], client_ip,
                     {"id": before["id"], "memberCount": int(before["member_count"])})


# -- members ------------------------------------------------------------------------------------

def _member_to_api(row: dict[str, Any]) -> dict[str, Any]:
    return {"userId": row["user_id"], "username": row["username"], "email": row["email"] or "",
            "fullName": row["full_name"], "role": row["role"], "joinedAt": row["created_at"]}


_MEMBER_SQL = ("SELECT m.user_id::text AS user_id, u.username, u.email, u.full_name, m.role, m.created_at"
               "  FROM group_members m JOIN users u ON u.id = m.user_id WHERE m.group_id = %s")


def list_members(group_id: str, limit: int, offset: int) -> dict[str, Any]:
    with connection() as conn:
        group = load_group(conn, group_id)
        rows = conn.execute(_MEMBER_SQL + " ORDER BY u.username LIMIT %s OFFSET %s",
                            (group["id"], limit, offset)).fetchall()
    return {"members": [_member_to_api(r) for r in rows], "total": int(group["member_count"])}


def _user_for_member(conn: psycopg.Connection[Any], value: object) -> dict[str, Any]:
    if not isinstance(value, str):
        raise ValidationError("userId", "expected a user id")
    try:
        return load_user(conn, parse_uuid(value))
    except NotFound:
        raise ValidationError("userId", "no such user") from None


def add_member(actor: Principal, group_id: str, body: dict[str, Any], client_ip: str) -> dict[str, Any]:
    role = valid_member_role(body.get("role", "member"))
    with transaction() as conn:
        group = load_group(conn, group_id, lock=True)
        user = _user_for_member(conn, body.get("userId"))
        inserted = conn.execute(
            "INSERT INTO group_members (group_id, user_id, role) VALUES (%s, %s, %s)"
            " ON CONFLICT (group_id, user_id) DO NOTHING RETURNING 1", (group["id"], user["id"], role)).fetchone()
        if inserted is None:
            raise Conflict(f"{user['username']} is already a member of {group['name']}", error="already a member")
        audit.record(conn, actor, "group.member.add", "group", group["name"], client_ip,
                     {"userId": user["id"], "username": user["username"], "role": role})
        row = conn.execute(_MEMBER_SQL + " AND m.user_id = %s", (group["id"], user["id"])).fetchone()
        if row is None:
            raise RuntimeError("invariant broken: row is None")
        return _member_to_api(row)


def update_member(actor: Principal, group_id: str, user_id: str, body: dict[str, Any],
                  client_ip: str) -> dict[str, Any]:
    role = valid_member_role(body.get("role"))
    with transaction() as conn:
        group = load_group(conn, group_id, lock=True)
        before = conn.execute(_MEMBER_SQL + " AND m.user_id = %s FOR UPDATE OF m",
                              (group["id"], parse_uuid(user_id))).fetchone()
        if before is None:
            raise NotFound("no such member of this group", error="not found")
        conn.execute("UPDATE group_members SET role = %s WHERE group_id = %s AND user_id = %s",
                     (role, group["id"], before["user_id"]))
        audit.record(conn, actor, "group.member.role", "group", group["name"], client_ip,
                     {"userId": before["user_id"], "username": before["username"], "from": before["role"],
                      "to": role})
        return {**_member_to_api(before), "role": role}


def remove_member(actor: Principal, group_id: str, user_id: str, client_ip: str) -> None:
    with transaction() as conn:
        group = load_group(conn, group_id, lock=True)
        row = conn.execute("DELETE FROM group_members WHERE group_id = %s AND user_id = %s"
                           " RETURNING user_id::text AS user_id", (group["id"], parse_uuid(user_id))).fetchone()
        if row is None:
            raise NotFound("no such member of this group", error="not found")
        audit.record(conn, actor, "group.member.remove", "group", group["name"], client_ip, {"userId": row["user_id"]})


def user_groups(user_id: str) -> dict[str, Any]:
    user_id = parse_uuid(user_id)
    with connection() as conn:
        load_user(conn, user_id)
        rows = conn.execute(compose("SELECT {cols} FROM groups g JOIN group_members m ON m.group_id = g.id"
                                    " WHERE m.user_id = %s ORDER BY g.name", cols=GROUP_COLUMNS), (user_id,)).fetchall()
    return {"groups": [group_to_api(r) for r in rows], "total": len(rows)}
