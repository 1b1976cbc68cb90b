"""The session index: one row of table `sessions` per Session object, kept in step with Kubernetes.

Listing, ownership checks, quotas, the idle sweep and heartbeats read this table and never call
Kubernetes. The API writes the row when it creates, changes or deletes a Session; the reconcile
functions call `upsert_from_object` / `update_status` / `remove` with what they see on the cluster
(Sessions applied with kubectl included), so both paths converge on the same row.

Every helper takes the caller's connection (`with transaction() as conn:`), so an index write
commits together with whatever else the caller changes (audit rows, connections...).

Storage quota: a user's home volume (`home-<user>`) is one claim shared by all of that user's
sessions, so it is charged once: to exactly one of the user's holding persistent-home sessions.
`home_storage_request` says whether a new session must carry the charge; `release` hands it on to
another holding session when the one carrying it ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from streamspace.domain.names import is_username_label

if TYPE_CHECKING:
    import psycopg

    Conn = psycopg.Connection[Any]

HOLDING = ("running", "hibernated")

# Live connections (computed at read time, never by a background job): no disconnect, and a
# heartbeat inside the window: c.disconnected_at IS NULL
#                               AND c.last_heartbeat > now() - make_interval(secs => <window seconds>)


def heartbeat_window() -> int:
    from streamspace.config import settings

    return settings().heartbeat_window_seconds


def _amounts(spec: Mapping[str, Any]) -> tuple[tuple[int, int], tuple[int, int]]:
    """((cpu millicores, memory bytes) of a spec's limits, the same of its requests); 0 for what is
    absent or unreadable."""
    from streamspace.domain.errors import ValidationError
    from streamspace.domain.quantity import cpu_millis, parse_memory
    from streamspace.domain.resources import normalise_resources

    try:
        resources = normalise_resources(spec.get("resources") or {}, "resources")
    except ValidationError:
        return (0, 0), (0, 0)

    def read(section: Mapping[str, Any]) -> tuple[int, int]:
        cpu = memory = 0
        try:
            cpu = cpu_millis(section["cpu"]) if "cpu" in section else 0
        except ValidationError:
            pass
        try:
            memory = parse_memory(section["memory"]) if "memory" in section else 0
        except ValidationError:
            pass
        return cpu, memory

    return read(resources["limits"]), read(resources["requests"])


def _seconds(value: object) -> int | None:
    from streamspace.domain.duration import DurationError, parse_duration

    try:
        return parse_duration(value, "duration")
    except DurationError:
        return None


def insert(conn: Conn, *, namespace: str, name: str, user_id: str, username: str, template: str,
           state: str, cpu_millis: int, memory_bytes: int, cpu_request_millis: int, memory_request_bytes: int,
           storage_bytes: int, persistent_home: bool, idle_timeout_seconds: int | None,
           max_duration_seconds: int | None, tags: list[str]) -> None:
    """The row of a Session the API is about to create (after quotas.check_and_reserve).
    Raises psycopg.errors.UniqueViolation when the name is taken."""
    conn.execute(
        "INSERT INTO sessions (namespace, name, user_id, username, template, state, cpu_millis, memory_bytes,"
        " cpu_request_millis, memory_request_bytes, storage_bytes, persistent_home, idle_timeout_seconds,"
        " max_duration_seconds, tags)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (namespace, name, user_id, username, template, state, cpu_millis, memory_bytes, cpu_request_millis,
         memory_request_bytes, storage_bytes, persistent_home, idle_timeout_seconds, max_duration_seconds, tags))


def home_storage_request(conn: Conn, user_id: str, persistent_home: bool, home_size_bytes: int) -> int:
    """Storage a new session must reserve: the home volume's size when no holding session of this
    user carries it yet, else 0 (call after quotas' locks, i.e. inside the create transaction)."""
    if not persistent_home:
        return 0
    row = conn.execute(
        "SELECT 1 FROM sessions WHERE user_id = %s AND state IN ('running', 'hibernated')"
        " AND storage_bytes > 0 LIMIT 1", (user_id,)).fetchone()
    return 0 if row else home_size_bytes


def release(conn: Conn, namespace: str, name: str) -> None:
    """Before a row stops holding (terminated or removed): hand its home-volume charge, if any, to
    another holding persistent-home session of the same user."""
    conn.execute(
        "WITH gone AS (SELECT user_id, storage_bytes FROM sessions"
        "               WHERE namespace = %(ns)s AND name = %(name)s AND storage_bytes > 0"
        "                 AND state IN ('running', 'hibernated')),"
        " heir AS (SELECT s.namespace, s.name FROM sessions s, gone"
        "           WHERE s.user_id = gone.user_id AND s.persistent_home AND s.state IN ('running', 'hibernated')"
        "             AND NOT (s.namespace = %(ns)s AND s.name = %(name)s)"
        "           ORDER BY s.created_at LIMIT 1)"
        " UPDATE sessions s SET storage_bytes = gone.storage_bytes FROM heir, gone"
        "  WHERE s.namespace = heir.namespace AND s.name = heir.name",
        {"ns": namespace, "name": name})
    conn.execute("UPDATE sessions SET storage_bytes = 0 WHERE namespace = %s AND name = %s AND storage_bytes > 0",
                 (namespace, name))


def set_state(conn: Conn, namespace: str, name: str, state: str, *, reset_activity: bool = False) -> bool:
    """Record a new desired state; `terminated` releases the row's quota. False: no such row."""
    if state not in (*HOLDING, "terminated"):
        raise ValueError(f"unknown session state {state!r}")
    if state == "terminated":
        release(conn, namespace, name)
    row = conn.execute(
        "UPDATE sessions SET state = %s, updated_at = now(),"
        " last_activity = CASE WHEN %s THEN now() ELSE last_activity END"
        " WHERE namespace = %s AND name = %s RETURNING 1",
        (state, reset_activity, namespace, name)).fetchone()
    return row is not None


def remove(conn: Conn, namespace: str, name: str) -> bool:
    """Drop a Session's row (and its connections). False: there was none."""
    release(conn, namespace, name)
    row = conn.execute("DELETE FROM sessions WHERE namespace = %s AND name = %s RETURNING 1",
                       (namespace, name)).fetchone()
    return row is not None


def update_status(conn: Conn, namespace: str, name: str, status: Mapping[str, Any], *,
                  uid: str | None = None) -> bool:
    """Copy a Session's status (phase, url, podName, message, observedGeneration) into its row."""
    row = conn.execute(
        "UPDATE sessions SET phase = coalesce(%s, phase), url = %s, pod_name = %s, message = %s,"
        " observed_generation = coalesce(%s, observed_generation), uid = coalesce(%s, uid), updated_at = now()"
        " WHERE namespace = %s AND name = %s RETURNING 1",
        (status.get("phase"), status.get("url"), status.get("podName"), status.get("message"),
         status.get("observedGeneration"), uid, namespace, name)).fetchone()
    return row is not None


def upsert_from_object(conn: Conn, obj: Mapping[str, Any]) -> None:
    """Make the row match a Session object as found on the cluster (spec and status).

    For objects the API did not create (kubectl apply), the owner is the user whose username is
    spec.user when spec.user is a username used as is (a hashed label names no one by name: such a
    row has no owner id and is matched by label only); a row that exists keeps its owner,
    created_at, activity and storage charge.
    Such a session was not quota-checked (whoever can apply Sessions is trusted), but from now on it
    counts against its owner's quota like any other.
    """
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    namespace, name = meta.get("namespace") or "", meta.get("name") or ""
    (cpu, memory), (cpu_request, memory_request) = _amounts(spec)
    state = spec.get("state") if spec.get("state") in (*HOLDING, "terminated") else "running"
    if state == "terminated":
        release(conn, namespace, name)
    tags = [str(t) for t in spec.get("tags") or [] if isinstance(t, str)]
    conn.execute(
        "INSERT INTO sessions (namespace, name, user_id, username, template, state, phase, url, pod_name, message,"
        " cpu_millis, memory_bytes, cpu_request_millis, memory_request_bytes, persistent_home,"
        " idle_timeout_seconds, max_duration_seconds, tags, uid, observed_generation, created_at)"
        " VALUES (%(ns)s, %(name)s, (SELECT id FROM users WHERE username = %(owner)s), %(user)s, %(template)s,"
        "  %(state)s, %(phase)s, %(url)s, %(pod)s, %(message)s, %(cpu)s, %(memory)s, %(cpu_request)s,"
        "  %(memory_request)s, %(home)s, %(idle)s, %(max)s,"
        "  %(tags)s, %(uid)s, %(gen)s, coalesce(%(created)s::timestamptz, now()))"
        " ON CONFLICT (namespace, name) DO UPDATE SET template = EXCLUDED.template, state = EXCLUDED.state,"
        "  phase = EXCLUDED.phase, url = EXCLUDED.url, pod_name = EXCLUDED.pod_name, message = EXCLUDED.message,"
        "  cpu_millis = EXCLUDED.cpu_millis, memory_bytes = EXCLUDED.memory_bytes,"
        "  cpu_request_millis = EXCLUDED.cpu_request_millis, memory_request_bytes = EXCLUDED.memory_request_bytes,"
        "  persistent_home = EXCLUDED.persistent_home, idle_timeout_seconds = EXCLUDED.idle_timeout_seconds,"
        "  max_duration_seconds = EXCLUDED.max_duration_seconds, tags = EXCLUDED.tags, uid = EXCLUDED.uid,"
        "  observed_generation = coalesce(EXCLUDED.observed_generation, sessions.observed_generation),"
        "  updated_at = now()",
        {"ns": namespace, "name": name, "user": str(spec.get("user") or ""),
         "owner": str(spec.get("user") or "") if is_username_label(str(spec.get("user") or "")) else None,
         "template": str(spec.get("template") or ""),
         "state": state, "phase": status.get("phase") or "Pending", "url": status.get("url"),
         "pod": status.get("podName"), "message": status.get("message"), "cpu": cpu, "memory": memory,
         "cpu_request": cpu_request, "memory_request": memory_request,
         "home": spec.get("persistentHome", True) is not False, "idle": _seconds(spec.get("idleTimeout", "30m")),
         "max": _seconds(spec.get("maxSessionDuration", "8h")), "tags": tags, "uid": meta.get("uid"),
         "gen": status.get("observedGeneration"), "created": meta.get("creationTimestamp")})

