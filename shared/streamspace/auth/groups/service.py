"""Groups and memberships (admin operations), each write in one transaction with its audit row."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from streamspace import audit
from streamspace.auth.groups import store
from streamspace.auth.users.service import load_user, parse_uuid, valid_text
from streamspace.db import connection, transaction
from streamspace.domain.errors import Conflict, NotFound, ValidationError

if TYPE_CHECKING:
    from streamspace.auth.principal import Principal
    from streamspace.db import Connection

GROUP_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
GROUP_TYPE_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
MEMBER_ROLES = ("member", "admin", "owner")

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


def _parent_id(conn: Connection, value: object, group_id: str | None) -> str | None:
    """Validate a parentId: null, or an existing group that is not this group nor below it."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError("parentId", "expected a group id or null")
    try:
        parent = parse_uuid(value, "group")
    except NotFound:
        raise ValidationError("parentId", "no such group") from None
    if not store.exists(conn, parent):
        raise ValidationError("parentId", "no such group")
    # Walk up from the new parent: reaching this group would make a cycle.
    if group_id is not None and store.is_at_or_above(conn, group_id, parent):
        raise ValidationError("parentId", "a group cannot be its own ancestor")
    return parent


def load_group(conn: Connection, group_id: str, *, lock: bool = False) -> dict[str, Any]:
    row = store.load(conn, parse_uuid(group_id, "group"), lock=lock)
    if row is None:
        raise NotFound("no such group", error="not found")
    return row


def list_groups(*, type_: str | None, parent_id: str | None, limit: int, offset: int) -> dict[str, Any]:
    if parent_id is not None:
        try:
            parent_id = parse_uuid(parent_id, "group")
        except NotFound:
            raise ValidationError("parentId", "expected a group id") from None
    with connection() as conn:
        rows, total = store.page(conn, type_=type_, parent_id=parent_id, limit=limit, offset=offset)
    return {"groups": [group_to_api(r) for r in rows], "total": total}


def get_group(group_id: str) -> dict[str, Any]:
    with connection() as conn:
        return group_to_api(load_group(conn, group_id))


def create_group(actor: Principal, body: dict[str, Any], client_ip: str) -> dict[str, Any]:
    name = valid_group_name(body.get("name"))
    display_name = valid_text(body.get("displayName", "") or "", "displayName")
    description = valid_text(body.get("description", "") or "", "description", 2000)
    type_ = valid_group_type(body.get("type", "team"))
    with transaction() as conn:
        parent = _parent_id(conn, body.get("parentId"), None)
        group_id = store.insert(conn, name, display_name, description, type_, parent)
        audit.record(conn, actor, "group.create", "group", name, client_ip, {"id": group_id, "type": type_})
        return group_to_api(load_group(conn, group_id))


def update_group(actor: Principal, group_id: str, body: dict[str, Any], client_ip: str) -> dict[str, Any]:
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
        store.update(conn, before["id"], changes)
        audit.record(conn, actor, "group.update", "group", before["name"], client_ip, changes)
        return group_to_api(load_group(conn, before["id"]))


def delete_group(actor: Principal, group_id: str, client_ip: str) -> None:
    with transaction() as conn:
        before = load_group(conn, group_id, lock=True)
        store.delete(conn, before["id"])
        audit.record(conn, actor, "group.delete", "group", before["name"], client_ip,
                     {"id": before["id"], "memberCount": int(before["member_count"])})


# -- members ------------------------------------------------------------------------------------

def _member_to_api(row: dict[str, Any]) -> dict[str, Any]:
    return {"userId": row["user_id"], "username": row["username"], "email": row["email"] or "",
            "fullName": row["full_name"], "role": row["role"], "joinedAt": row["created_at"]}


def list_members(group_id: str, limit: int, offset: int) -> dict[str, Any]:
    with connection() as conn:
        group = load_group(conn, group_id)
        rows = store.members_page(conn, group["id"], limit, offset)
    return {"members": [_member_to_api(r) for r in rows], "total": int(group["member_count"])}


def _user_for_member(conn: Connection, value: object) -> dict[str, Any]:
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
        if not store.add_member(conn, group["id"], user["id"], role):
            raise Conflict(f"{user['username']} is already a member of {group['name']}", error="already a member")
        audit.record(conn, actor, "group.member.add", "group", group["name"], client_ip,
                     {"userId": user["id"], "username": user["username"], "role": role})
        row = store.member(conn, group["id"], user["id"])
        if row is None:
            raise RuntimeError("invariant broken: row is None")
        return _member_to_api(row)


def update_member(actor: Principal, group_id: str, user_id: str, body: dict[str, Any],
                  client_ip: str) -> dict[str, Any]:
    role = valid_member_role(body.get("role"))
    with transaction() as conn:
        group = load_group(conn, group_id, lock=True)
        before = store.member(conn, group["id"], parse_uuid(user_id), lock=True)
        if before is None:
            raise NotFound("no such member of this group", error="not found")
        store.set_member_role(conn, group["id"], before["user_id"], role)
        audit.record(conn, actor, "group.member.role", "group", group["name"], client_ip,
                     {"userId": before["user_id"], "username": before["username"], "from": before["role"],
                      "to": role})
        return {**_member_to_api(before), "role": role}


def remove_member(actor: Principal, group_id: str, user_id: str, client_ip: str) -> None:
    with transaction() as conn:
        group = load_group(conn, group_id, lock=True)
        removed = store.remove_member(conn, group["id"], parse_uuid(user_id))
        if removed is None:
            raise NotFound("no such member of this group", error="not found")
        audit.record(conn, actor, "group.member.remove", "group", group["name"], client_ip, {"userId": removed})


def user_groups(user_id: str) -> dict[str, Any]:
    user_id = parse_uuid(user_id)
    with connection() as conn:
        load_user(conn, user_id)
        rows = store.of_user(conn, user_id)
    return {"groups": [group_to_api(r) for r in rows], "total": len(rows)}
