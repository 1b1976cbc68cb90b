"""The audit log: who did what to which object, from where.

Write the row with the connection of the change it describes, inside the same transaction, so a
change is never recorded without happening nor happens without being recorded:

    with transaction() as conn:
        conn.execute("UPDATE users SET role = %s WHERE id = %s", (role, user_id))
        audit.record(conn, req.caller, "user.role", "user", username, req.client_ip, {"role": role})

`actor` is the calling Principal, or None for the system (bootstrap, reconcile, sweeps) and for
anonymous callers (failed logins: put the attempted username in `details`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from streamspace.db import fetch_all
from streamspace.encoding import json_default

if TYPE_CHECKING:
    from streamspace.db import Connection


class Actor(Protocol):
    """Who acts: the calling `auth.principal.Principal` fits (audit sits below auth and never imports it)."""

    @property
    def user_id(self) -> str: ...

    @property
    def username(self) -> str: ...

_INSERT_INTO = "INSERT INTO audit_log (actor_id, actor, action, target_type, target, client_ip, details) VALUES "
_ROW = "(%s, %s, %s, %s, %s, %s, %s::jsonb)"
_INSERT = _INSERT_INTO + _ROW
_ROWS_PER_STATEMENT = 500  # record_many's bound on one statement's size


def record(conn: Connection, actor: Actor | None, action: str, target_type: str, target: str,
           client_ip: str = "", details: Mapping[str, Any] | None = None, *, actor_name: str | None = None) -> None:
    """Append one audit row on `conn` (the transaction of the change). Never put secrets in details.

    `actor_name` overrides the recorded actor name (e.g. "anonymous" for a failed login)."""
    actor_id = actor.user_id if actor is not None else None
    if actor_name is None:
        actor_name = actor.username if actor is not None else "system"
    conn.execute(_INSERT, (actor_id, actor_name, action, target_type, str(target), client_ip or "",
                           json.dumps(dict(details or {}), default=json_default)))


def record_many(conn: Connection, action_rows: list[tuple[str, str, str, Mapping[str, Any]]], *,
                actor_name: str) -> None:
    """Append many system rows at once, `(action, target_type, target, details)` each: one multi-row
    INSERT, one round trip, per _ROWS_PER_STATEMENT rows (the idle sweep records a whole tick's
    transitions like this). Not executemany: psycopg2 runs that as one round trip per row."""
    rows = [(None, actor_name, action, target_type, str(target), "", json.dumps(dict(details), default=json_default))
            for action, target_type, target, details in action_rows]
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start:start + _ROWS_PER_STATEMENT]
        conn.execute(_INSERT_INTO + ", ".join([_ROW] * len(chunk)), [value for row in chunk for value in row])


AUDIT_PAGE_MAX = 500
_SEARCH = (
    "SELECT id, at, actor, action, target_type, target, client_ip, details FROM audit_log"
    " WHERE (%(actor)s::text IS NULL OR actor = %(actor)s)"
    "   AND (%(action)s::text IS NULL OR action LIKE %(action_prefix)s)"
    "   AND (%(since)s::timestamptz IS NULL OR at >= %(since)s)"
    "   AND (%(until)s::timestamptz IS NULL OR at < %(until)s)"
    " ORDER BY at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s"
)


def search(*, actor: str | None = None, action: str | None = None, since: Any = None, until: Any = None,
           limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """Audit rows, newest first. `action` matches itself and its sub-actions (`session` finds
    `session.create`, `session.hibernated`, ...); `since`/`until` are datetimes (until exclusive)."""

    prefix = None if action is None else action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return fetch_all(_SEARCH, {"actor": actor, "action": action,
                               "action_prefix": None if prefix is None else prefix + "%",
                               "since": since, "until": until, "limit": min(limit, AUDIT_PAGE_MAX),
                               "offset": offset})


def hourly_counts(prefix: str, hours: int = 24) -> list[dict[str, Any]]:
    """How many `prefix*` actions of each kind happened in each of the last `hours` hours."""

    return fetch_all(
        "SELECT date_trunc('hour', at) AS hour, action, count(*) AS n FROM audit_log"
        " WHERE action LIKE %(prefix)s AND at > now() - make_interval(hours => %(hours)s)"
        " GROUP BY 1, 2 ORDER BY 1", {"prefix": prefix.replace("_", "\\_") + "%", "hours": hours})
