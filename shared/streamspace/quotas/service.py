"""Quotas: limits per user and per group, usage derived from the sessions index, never a counter.

A session holds resources while its state is `running` or `hibernated`; a `terminated` one holds
nothing. It counts against its user's quota and against the quota of every group of that user.
A limit nobody set is the documented default (absent quota rows, or NULL columns).

Creating a session (the sessions function):

    with transaction() as conn:
        quotas.service.check_and_reserve(conn, user_id, Usage(1, cpu, memory, storage))
        sessions.store.insert(conn, ...)   # the reservation is this row

`check_and_reserve` takes transaction-scoped advisory locks on the user and each of its groups
(always in the same sorted order, so two creators never deadlock), so two concurrent creates for
the same user or group are serialised and the second sees the first's row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamspace import audit
from streamspace.db import connection, transaction
from streamspace.domain.errors import NotFound, ValidationError
from streamspace.domain.quotas import LIMIT_FIELDS, Usage, exceeded, limits_to_api, parse_limits, usage_to_api
from streamspace.quotas import store

if TYPE_CHECKING:
    from streamspace.db import Connection


def check_and_reserve(conn: Connection, user_id: str, requested: Usage) -> None:
    """Inside the caller's open transaction: serialise with every other create for this user and
    its groups, then raise QuotaExceeded if `requested` does not fit the user's quota or any of its
    groups' quotas. The caller inserts the sessions row in the same transaction right after."""
    if not store.in_transaction(conn):
        raise RuntimeError("check_and_reserve must run inside the transaction that inserts the session row")
    store.lock_scopes(conn, user_id, store.group_ids_of(conn, user_id))
    # After the locks: memberships and limits as they are now.
    failure = exceeded("user", store.user_limits(conn, user_id), store.user_usage(conn, user_id), requested)
    if failure is not None:
        raise failure
    for _, name, limits, used in store.groups_of_user(conn, user_id):
        failure = exceeded(f"group:{name}", limits, used, requested)
        if failure is not None:
            raise failure


# -- the API shapes -------------------------------------------------------------------------------

def _user_quota_to_api(row: dict[str, Any]) -> dict[str, Any]:
    return {"username": row["username"], "limits": limits_to_api(row["limits"]), "used": usage_to_api(row["used"]),
            "createdAt": row["created_at"], "updatedAt": row["updated_at"]}


def user_quota_on(conn: Connection, user_id: str) -> dict[str, Any]:
    """The contract's UserQuota object: `{username, limits, used, createdAt, updatedAt}`."""
    row = store.user_quota_row(conn, user_id)
    if row is None:
        raise NotFound("no such user", error="not found")
    return _user_quota_to_api(row)


def group_quota_on(conn: Connection, group_id: str) -> dict[str, Any]:
    """A group's quota in the same shape: `{groupId, name, limits, used, createdAt, updatedAt}`."""
    row = store.group_quota_row(conn, group_id)
    if row is None:
        raise NotFound("no such group", error="not found")
    return {"groupId": row["id"], "name": row["name"], "limits": limits_to_api(row["limits"]),
            "used": usage_to_api(row["used"]), "createdAt": row["created_at"], "updatedAt": row["updated_at"]}


def user_quota(user_id: str) -> dict[str, Any]:
    with connection() as conn:
        return user_quota_on(conn, user_id)


def group_quota(group_id: str) -> dict[str, Any]:
    with connection() as conn:
        return group_quota_on(conn, group_id)


def list_user_quotas(limit: int, offset: int) -> dict[str, Any]:
    """Every user's UserQuota (defaults where none was set)."""
    with connection() as conn:
        page, total = store.user_quota_page(conn, limit, offset)
    return {"quotas": [_user_quota_to_api(row) for row in page], "total": total}


def user_id_by_name(conn: Connection, username: object) -> str:
    if not isinstance(username, str) or not username:
        raise ValidationError("username", "expected a username")
    user_id = store.user_id_by_name(conn, username)
    if user_id is None:
        raise NotFound(f"no user named {username!r}", error="not found")
    return user_id


# -- setting limits -----------------------------------------------------------------------------

def set_user_quota(actor: Any, user_id: str, body: dict[str, Any], client_ip: str) -> dict[str, Any]:
    """Set the given limits of a user (absent fields unchanged, null back to the default)."""
    limits = parse_limits(body)
    with transaction() as conn:
        quota = user_quota_on(conn, user_id)  # 404 for an unknown user
        if limits:
            store.set_user_limits(conn, user_id, limits)
            audit.record(conn, actor, "quota.user.set", "user", quota["username"], client_ip,
                         {k: body[k] for k in sorted(LIMIT_FIELDS & set(body))})
        return user_quota_on(conn, user_id)


def reset_user_quota(actor: Any, user_id: str, client_ip: str) -> dict[str, Any]:
    """Back to the defaults: the user's quota row is removed."""
    with transaction() as conn:
        quota = user_quota_on(conn, user_id)
        store.delete_user_limits(conn, user_id)
        audit.record(conn, actor, "quota.user.reset", "user", quota["username"], client_ip)
        return user_quota_on(conn, user_id)


def set_group_quota(actor: Any, group_id: str, body: dict[str, Any], client_ip: str) -> dict[str, Any]:
    limits = parse_limits(body)
    with transaction() as conn:
        quota = group_quota_on(conn, group_id)
        if limits:
            store.set_group_limits(conn, group_id, limits)
            audit.record(conn, actor, "quota.group.set", "group", quota["name"], client_ip,
                         {k: body[k] for k in sorted(LIMIT_FIELDS & set(body))})
        return group_quota_on(conn, group_id)
