"""The session index as the reconcilers and the idle sweep read and write it: the second module of
the sessions store (with `sessions.store`, the only code that speaks SQL to `sessions`,
`connections` and `session_tombstones`).

- The session reconcile's context is ONE statement (reconcile/index.py composes it): this module
  gives its session parts as fragments (`ROW_SUBQUERY`, `TOMBSTONED_SUBQUERY`), as the templates
  store gives the Template's.
- Index writes of one Session name are serialised by `lock_name` (a transaction-scoped advisory
  lock: the row may not exist, so a row lock cannot do it); a deleted Session's uid is kept as a
  tombstone for a day, so late events for it change nothing.
- The idle sweep finds and claims every due session in two statements (`claim_due`).

Every writer takes the caller's connection, so it commits with the rest of the caller's change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamspace.db import execute, fetch_all, fetch_one
from streamspace.sessions.store import release

if TYPE_CHECKING:
    from streamspace.db import Connection

    Conn = Connection

# -- the session reconcile's context ------------------------------------------------------------------

# The index row of the Session `%(name)s` in namespace `%(ns)s` as one JSON value (NULL: none), and
# whether the Session of uid `%(uid)s` was deleted: constants for a caller that composes them into
# one statement of its own (values are always bound parameters).
ROW_SUBQUERY = "(SELECT to_jsonb(s) FROM sessions s WHERE s.namespace = %(ns)s AND s.name = %(name)s)"
TOMBSTONED_SUBQUERY = "EXISTS (SELECT 1 FROM session_tombstones WHERE uid = %(uid)s)"


def rows_of_namespace(namespace: str) -> dict[str, dict[str, Any]]:
    """name -> index row (as ROW_SUBQUERY answers it) of every session of the namespace."""
    return {r["s"]["name"]: r["s"] for r in fetch_all(
        "SELECT to_jsonb(s) AS s FROM sessions s WHERE namespace = %s", (namespace,))}


def names_of_template(namespace: str, template: str) -> list[str]:
    return [r["name"] for r in fetch_all("SELECT name FROM sessions WHERE namespace = %s AND template = %s",
                                         (namespace, template))]


def row_older_than(namespace: str, name: str, seconds: int) -> bool:
    """Whether the session's row exists and was created more than `seconds` ago."""
    return fetch_one("SELECT 1 FROM sessions WHERE namespace = %s AND name = %s"
                     " AND created_at < now() - %s * interval '1 second'", (namespace, name, seconds)) is not None


# -- serialised index writes and tombstones ------------------------------------------------------------

def lock_name(conn: Conn, namespace: str, name: str) -> None:
    """Serialise index writes and forgets of one Session name until the transaction ends: a reconcile
    that loaded its context before the Session's delete event was handled must not write the row
    back after it was removed (a row lock cannot do this: the row may not exist)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"session-index/{namespace}/{name}",))


def is_tombstoned(conn: Conn, uid: str) -> bool:
    """Whether the Session of this uid was deleted."""
    return conn.execute("SELECT 1 FROM session_tombstones WHERE uid = %s", (uid,)).fetchone() is not None


def bury(conn: Conn, uid: str, namespace: str, name: str) -> None:
    """Remember that the Session of this uid was deleted."""
    conn.execute("INSERT INTO session_tombstones (uid, namespace, name) VALUES (%s, %s, %s)"
                 " ON CONFLICT (uid) DO NOTHING", (uid, namespace, name))


def locked_uid(conn: Conn, namespace: str, name: str) -> tuple[bool, str | None]:
    """(whether the row exists, its uid), the row locked until the transaction ends."""
    row = conn.execute("SELECT uid FROM sessions WHERE namespace = %s AND name = %s FOR UPDATE",
                       (namespace, name)).fetchone()
    return (False, None) if row is None else (True, row["uid"])


def drop_tombstones_older_than(days: int) -> int:
    return execute("DELETE FROM session_tombstones WHERE deleted_at < now() - %s * interval '1 day'", (days,))


# -- the idle sweep --------------------------------------------------------------------------------------

# Four branches, each served by a partial index: own idle timeout (sessions_idle_deadline), default
# idle timeout (sessions_running_activity), own maximum duration (sessions_max_deadline), default
# maximum duration (sessions_running_created). Termination wins over hibernation.
DUE_SQL = """
WITH due AS (
    SELECT namespace, name, state, 'terminate' AS action FROM sessions
     WHERE state <> 'terminated' AND max_duration_seconds > 0
       AND streamspace_deadline(created_at, max_duration_seconds) < now()
    UNION ALL
    SELECT namespace, name, state, 'terminate' FROM sessions
     WHERE state <> 'terminated' AND max_duration_seconds IS NULL AND %(max)s > 0
       AND created_at < now() - %(max)s * interval '1 second'
    UNION ALL
    SELECT namespace, name, state, 'hibernate' FROM sessions
     WHERE %(auto)s AND state = 'running' AND idle_timeout_seconds > 0
       AND streamspace_deadline(last_activity, idle_timeout_seconds) < now()
    UNION ALL
    SELECT namespace, name, state, 'hibernate' FROM sessions
     WHERE %(auto)s AND state = 'running' AND idle_timeout_seconds IS NULL AND %(idle)s > 0
       AND last_activity < now() - %(idle)s * interval '1 second'
)
SELECT DISTINCT ON (namespace, name) namespace, name, state, action
  FROM due
 ORDER BY namespace, name, action DESC
 LIMIT %(limit)s
"""

# Claim: move the rows' state, unless it changed since the find (a concurrent sweep or a wake).
_CLAIM_SQL = """
UPDATE sessions s SET state = d.target, updated_at = now()
  FROM unnest(%(ns)s::text[], %(name)s::text[], %(previous)s::text[], %(target)s::text[])
       AS d(namespace, name, previous, target)
 WHERE s.namespace = d.namespace AND s.name = d.name AND s.state = d.previous
RETURNING s.namespace, s.name, s.uid, s.username, s.user_id, d.previous, d.target,
          s.last_activity, s.created_at, s.idle_timeout_seconds, s.max_duration_seconds
"""


def claim_due(conn: Conn, *, auto_hibernation: bool, default_idle_seconds: int, default_max_seconds: int,
              limit: int) -> list[dict[str, Any]]:
    """Find the sessions due (at most `limit`) and claim them by moving their rows' state: running and
    idle past the idle timeout -> hibernated (with `auto_hibernation`), past the maximum duration ->
    terminated (their home-volume charge handed on first). The rows claimed: namespace, name, uid,
    username, user_id, previous and target state, last_activity, created_at and the two limits."""
    due = conn.execute(DUE_SQL, {"auto": auto_hibernation, "idle": default_idle_seconds,
                                 "max": default_max_seconds, "limit": limit}).fetchall()
    if not due:
        return []
    for row in due:
        if row["action"] == "terminate":  # hand its home-volume quota charge on first
            release(conn, row["namespace"], row["name"])
    return list(conn.execute(_CLAIM_SQL, {
        "ns": [r["namespace"] for r in due], "name": [r["name"] for r in due],
        "previous": [r["state"] for r in due],
        "target": ["terminated" if r["action"] == "terminate" else "hibernated" for r in due],
    }).fetchall())


def unclaim(conn: Conn, namespace: str, name: str, previous: str, target: str) -> None:
    """Put a claimed row's state back (its Session could not be changed), unless it moved on since."""
    conn.execute("UPDATE sessions SET state = %s WHERE namespace = %s AND name = %s AND state = %s",
                 (previous, namespace, name, target))
