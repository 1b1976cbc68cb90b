"""Quotas: limits per user and per group, usage derived from the sessions index, never a counter.

A session holds resources while its state is `running` or `hibernated`; a `terminated` one holds
nothing. It counts against its user's quota and against the quota of every group of that user.
A limit nobody set is the documented default (absent quota rows, or NULL columns).

Creating a session (the sessions function):

    with transaction() as conn:
        quotas.check_and_reserve(conn, user_id, quotas.Usage(1, cpu, memory, storage))
        conn.execute("INSERT INTO sessions ...")   # the reservation is this row

`check_and_reserve` takes transaction-scoped advisory locks on the user and each of its groups
(always in the same sorted order, so two creators never deadlock), so two concurrent creates for
the same user or group are serialised and the second sees the first's row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streamspace import audit
from streamspace.db import compose, connection, transaction
from streamspace.domain.errors import Forbidden, NotFound, ValidationError
from streamspace.domain.quantity import cpu_millis, format_cpu, format_memory, parse_memory

if TYPE_CHECKING:
    import psycopg

GiB = 2**30


@dataclass(frozen=True)
class Usage:
    sessions: int
    cpu_millis: int
    memory_bytes: int
    storage_bytes: int


@dataclass(frozen=True)
class Limits:
    max_sessions: int
    max_cpu_millis: int
    max_memory_bytes: int
    max_storage_bytes: int


USER_DEFAULTS = Limits(5, 4000, 16 * GiB, 100 * GiB)
GROUP_DEFAULTS = Limits(20, 16000, 64 * GiB, 500 * GiB)


def display(resource: str, amount: int) -> str:
    """A resource amount as clients read it: sessions as a number, cpu/memory/storage as quantities."""
    if resource == "sessions":
        return str(amount)
    if resource == "cpu":
        return format_cpu(amount)
    return format_memory(amount)


class QuotaExceeded(Forbidden):
    """A create would take a user or group past a limit: 403 with the `quota` that refused it."""

    def __init__(self, limit: str, scope: str, current: str, requested: str, maximum: str) -> None:
        self.limit = limit  # which resource: sessions | cpu | memory | storage
        self.scope = scope  # "user" or "group:<name>"
        self.current = current
        self.requested = requested
        self.maximum = maximum
        where = "your" if scope == "user" else f"group {scope.split(':', 1)[1]!r}"
        super().__init__(f"{limit} quota exceeded for {where} quota: {current} in use, {requested} requested,"
                         f" limit {maximum}", error="Quota exceeded",
                         quota={"resource": limit, "scope": scope, "current": current, "requested": requested,
                                "limit": maximum})


# -- reading ------------------------------------------------------------------------------------

def _lock_key(text: str) -> int:
    """A signed 64-bit advisory lock key for `text` (stable across processes and versions)."""
    return int.from_bytes(hashlib.sha256(("streamspace.quota:" + text).encode()).digest()[:8], "big", signed=True)


def _limits(row: dict[str, Any] | None, defaults: Limits) -> Limits:
    def pick(column: str, default: int) -> int:
        value = row.get(column) if row else None
        return default if value is None else int(value)

    return Limits(pick("max_sessions", defaults.max_sessions), pick("max_cpu_millis", defaults.max_cpu_millis),
                  pick("max_memory_bytes", defaults.max_memory_bytes),
                  pick("max_storage_bytes", defaults.max_storage_bytes))


# A fixed SQL fragment, composed with psycopg.sql (values are always parameters).
_USAGE_COLUMNS = ("count(*) AS sessions, coalesce(sum(s.cpu_millis), 0) AS cpu_millis,"
                  " coalesce(sum(s.memory_bytes), 0) AS memory_bytes,"
                  " coalesce(sum(s.storage_bytes), 0) AS storage_bytes")


def _usage(row: dict[str, Any] | None) -> Usage:
    if row is None:
        return Usage(0, 0, 0, 0)
    return Usage(int(row["sessions"]), int(row["cpu_millis"]), int(row["memory_bytes"]), int(row["storage_bytes"]))


def user_usage(conn: psycopg.Connection[Any], user_id: str) -> Usage:
    row = conn.execute(
        compose("SELECT {usage} FROM sessions s WHERE s.user_id = %s AND s.state IN ('running', 'hibernated')",
                usage=_USAGE_COLUMNS),
        (user_id,)).fetchone()
    return _usage(row)


def group_usage(conn: psycopg.Connection[Any], group_id: str) -> Usage:
    row = conn.execute(
        compose("SELECT {usage} FROM sessions s JOIN group_members gm ON gm.user_id = s.user_id"
                " WHERE gm.group_id = %s AND s.state IN ('running', 'hibernated')", usage=_USAGE_COLUMNS),
        (group_id,)).fetchone()
    return _usage(row)


def _exceeded(scope: str, limits: Limits, used: Usage, requested: Usage) -> QuotaExceeded | None:
    checks = (
        ("sessions", used.sessions, requested.sessions, limits.max_sessions),
        ("cpu", used.cpu_millis, requested.cpu_millis, limits.max_cpu_millis),
        ("memory", used.memory_bytes, requested.memory_bytes, limits.max_memory_bytes),
        ("storage", used.storage_bytes, requested.storage_bytes, limits.max_storage_bytes),
    )
    for resource, current, wanted, maximum in checks:
        if wanted > 0 and current + wanted > maximum:
            return QuotaExceeded(resource, scope, display(resource, current), display(resource, wanted),
                                 display(resource, maximum))
    return None


def check_and_reserve(conn: psycopg.Connection[Any], user_id: str, requested: Usage) -> None:
    """Inside the caller's open transaction: serialise with every other create for this user and
    its groups, then raise QuotaExceeded if `requested` does not fit the user's quota or any of its
    groups' quotas. The caller inserts the sessions row in the same transaction right after."""
    from psycopg import pq

    if conn.info.transaction_status == pq.TransactionStatus.IDLE:  # not inside a transaction
        raise RuntimeError("check_and_reserve must run inside the transaction that inserts the session row")
    groups = conn.execute("SELECT group_id::text AS id FROM group_members WHERE user_id = %s",
                          (user_id,)).fetchall()
    group_ids = sorted(str(g["id"]) for g in groups)
    keys = sorted({_lock_key("user:" + str(user_id))} | {_lock_key("group:" + g) for g in group_ids})
    conn.execute("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(%s::bigint[]) AS k", (keys,))
    # After the locks: memberships and limits as they are now.
    user_row = conn.execute("SELECT * FROM user_quotas WHERE user_id = %s", (user_id,)).fetchone()
    failure = _exceeded("user", _limits(user_row, USER_DEFAULTS), user_usage(conn, user_id), requested)
    if failure is not None:
        raise failure
    rows = conn.execute(
        "SELECT g.id::text AS id, g.name, q.max_sessions, q.max_cpu_millis, q.max_memory_bytes, q.max_storage_bytes"
        "  FROM group_members gm JOIN groups g ON g.id = gm.group_id"
        "  LEFT JOIN group_quotas q ON q.group_id = g.id"
        " WHERE gm.user_id = %s ORDER BY g.name", (user_id,)).fetchall()
    if not rows:
        return
    usage_rows = conn.execute(
        compose("SELECT gm.group_id::text AS id, {usage}"
                "  FROM group_members gm JOIN sessions s ON s.user_id = gm.user_id"
                "   AND s.state IN ('running', 'hibernated')"
                " WHERE gm.group_id = ANY(%s::uuid[]) GROUP BY gm.group_id", usage=_USAGE_COLUMNS),
        ([r["id"] for r in rows],)).fetchall()
    usage_by_group = {r["id"]: _usage(r) for r in usage_rows}
    for row in rows:
        failure = _exceeded(f"group:{row['name']}", _limits(row, GROUP_DEFAULTS),
                            usage_by_group.get(row["id"], Usage(0, 0, 0, 0)), requested)
        if failure is not None:
            raise failure


# -- the API shapes -------------------------------------------------------------------------------

def limits_to_api(limits: Limits) -> dict[str, Any]:
    return {"maxSessions": limits.max_sessions, "maxCPU": display("cpu", limits.max_cpu_millis),
            "maxMemory": display("memory", limits.max_memory_bytes),
            "maxStorage": display("storage", limits.max_storage_bytes)}


def usage_to_api(used: Usage) -> dict[str, Any]:
    return {"sessions": used.sessions, "cpu": display("cpu", used.cpu_millis),
            "memory": display("memory", used.memory_bytes), "storage": display("storage", used.storage_bytes)}


def user_quota_on(conn: psycopg.Connection[Any], user_id: str) -> dict[str, Any]:
    row = conn.execute(
        "SELECT u.username, q.max_sessions, q.max_cpu_millis, q.max_memory_bytes, q.max_storage_bytes,"
        "       q.created_at, q.updated_at"
        "  FROM users u LEFT JOIN user_quotas q ON q.user_id = u.id WHERE u.id = %s", (user_id,)).fetchone()
    if row is None:
        raise NotFound("no such user", error="not found")
    return {"username": row["username"], "limits": limits_to_api(_limits(row, USER_DEFAULTS)),
            "used": usage_to_api(user_usage(conn, user_id)), "createdAt": row["created_at"],
            "updatedAt": row["updated_at"]}


def group_quota_on(conn: psycopg.Connection[Any], group_id: str) -> dict[str, Any]:
    row = conn.execute(
        "SELECT g.id::text AS id, g.name, q.max_sessions, q.max_cpu_millis, q.max_memory_bytes, q.max_storage_bytes,"
        "       q.created_at, q.updated_at"
        "  FROM groups g LEFT JOIN group_quotas q ON q.group_id = g.id WHERE g.id = %s", (group_id,)).fetchone()
    if row is None:
        raise NotFound("no such group", error="not found")
    return {"groupId": row["id"], "name": row["name"], "limits": limits_to_api(_limits(row, GROUP_DEFAULTS)),
            "used": usage_to_api(group_usage(conn, group_id)), "createdAt": row["created_at"],
            "updatedAt": row["updated_at"]}


def user_quota(user_id: str) -> dict[str, Any]:
    """The contract's UserQuota object: `{username, limits, used, createdAt, updatedAt}`."""
    with connection() as conn:
        return user_quota_on(conn, user_id)


def group_quota(group_id: str) -> dict[str, Any]:
    """A group's quota in the same shape: `{groupId, name, limits, used, createdAt, updatedAt}`."""
    with connection() as conn:
        return group_quota_on(conn, group_id)


# -- setting limits -----------------------------------------------------------------------------

LIMIT_FIELDS = frozenset({"maxSessions", "maxCPU", "maxMemory", "maxStorage"})
_COLUMNS = {"maxSessions": "max_sessions", "maxCPU": "max_cpu_millis", "maxMemory": "max_memory_bytes",
            "maxStorage": "max_storage_bytes"}


def parse_limits(body: dict[str, Any]) -> dict[str, int | None]:
    """The limit fields present in `body` as column -> value (None: back to the default)."""
    out: dict[str, int | None] = {}
    for name in sorted(LIMIT_FIELDS & set(body)):
        value = body[name]
        if value is None:
            out[_COLUMNS[name]] = None
        elif name == "maxSessions":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100_000:
                raise ValidationError(name, f"expected a whole number from 0 to 100000, got {value!r}")
            out[_COLUMNS[name]] = value
        elif name == "maxCPU":
            out[_COLUMNS[name]] = cpu_millis(value, name, allow_zero=True)
        else:
            out[_COLUMNS[name]] = parse_memory(value, name, allow_zero=True)
    return out


def set_limits(conn: psycopg.Connection[Any], table: str, key_column: str, key: str,
               limits: dict[str, int | None]) -> None:
    """Upsert the given limit columns of a user_quotas or group_quotas row (others unchanged)."""
    if table not in ("user_quotas", "group_quotas") or key_column not in ("user_id", "group_id"):
        raise ValueError("unknown quota table")
    from psycopg import sql

    columns = [c for c in ("max_sessions", "max_cpu_millis", "max_memory_bytes", "max_storage_bytes") if c in limits]
    insert_cols = [sql.Identifier(key_column), *(sql.Identifier(c) for c in columns)]
    updates: list[Any] = [sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in columns]
    updates.append(sql.SQL("updated_at = now()"))
    template = "INSERT INTO {table} ({cols}) VALUES ({vals}) ON CONFLICT ({key}) DO UPDATE SET {updates}"
    statement = sql.SQL(template).format(
        table=sql.Identifier(table), cols=sql.SQL(", ").join(insert_cols),
        vals=sql.SQL(", ").join(sql.Placeholder() for _ in insert_cols), key=sql.Identifier(key_column),
        updates=sql.SQL(", ").join(updates))
    conn.execute(statement, (key, *(limits[c] for c in columns)))


def list_user_quotas(limit: int, offset: int) -> dict[str, Any]:
    """Every user's UserQuota (defaults where none was set), in one query."""
    with connection() as conn:
        total = conn.execute("SELECT count(*) AS n FROM users").fetchone()
        rows = conn.execute(
            compose("SELECT u.username, q.max_sessions, q.max_cpu_millis, q.max_memory_bytes, q.max_storage_bytes,"
                    "       q.created_at, q.updated_at, used.*"
                    "  FROM users u LEFT JOIN user_quotas q ON q.user_id = u.id"
                    "  CROSS JOIN LATERAL (SELECT {usage} FROM sessions s"
                    "                       WHERE s.user_id = u.id AND s.state IN ('running', 'hibernated')) used"
                    " ORDER BY u.username LIMIT %s OFFSET %s", usage=_USAGE_COLUMNS), (limit, offset)).fetchall()
    quotas = [{"username": r["username"], "limits": limits_to_api(_limits(r, USER_DEFAULTS)),
               "used": usage_to_api(_usage(r)), "createdAt": r["created_at"], "updatedAt": r["updated_at"]}
              for r in rows]
    return {"quotas": quotas, "total": int(total["n"]) if total else 0}


def user_id_by_name(conn: psycopg.Connection[Any], username: object) -> str:
    if not isinstance(username, str) or not username:
        raise ValidationError("username", "expected a username")
    row = conn.execute("SELECT id::text AS id FROM users WHERE username = %s", (username,)).fetchone()
    if row is None:
        raise NotFound(f"no user named {username!r}", error="not found")
    return str(row["id"])


def set_user_quota(actor: Any, user_id: str, body: dict[str, Any], client_ip: str) -> dict[str, Any]:
    """Set the given limits of a user (absent fields unchanged, null back to the default)."""
    limits = parse_limits(body)
    with transaction() as conn:
        quota = user_quota_on(conn, user_id)  # 404 for an unknown user
        if limits:
            set_limits(conn, "user_quotas", "user_id", user_id, limits)
            audit.record(conn, actor, "quota.user.set", "user", quota["username"], client_ip,
                         {k: body[k] for k in sorted(LIMIT_FIELDS & set(body))})
        return user_quota_on(conn, user_id)


def reset_user_quota(actor: Any, user_id: str, client_ip: str) -> dict[str, Any]:
    """Back to the defaults: the user's quota row is removed."""
    with transaction() as conn:
        quota = user_quota_on(conn, user_id)
        conn.execute("DELETE FROM user_quotas WHERE user_id = %s", (user_id,))
        audit.record(conn, actor, "quota.user.reset", "user", quota["username"], client_ip)
        return user_quota_on(conn, user_id)


def set_group_quota(actor: Any, group_id: str, body: dict[str, Any], client_ip: str) -> dict[str, Any]:
    limits = parse_limits(body)
    with transaction() as conn:
        quota = group_quota_on(conn, group_id)
        if limits:
            set_limits(conn, "group_quotas", "group_id", group_id, limits)
            audit.record(conn, actor, "quota.group.set", "group", quota["name"], client_ip,
                         {k: body[k] for k in sorted(LIMIT_FIELDS & set(body))})
        return group_quota_on(conn, group_id)
