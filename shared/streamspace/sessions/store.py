"""The sessions store: with `sessions.index_store` (the reconcilers' and the idle sweep's statements),
the only code that speaks SQL to the tables `sessions` (one row per Session object, kept in step with
Kubernetes: the session index) and `connections`. Callers above the sessions package call it or
compose its fragments; the packages it calls (quotas, users, desktop access) read the views it
publishes for them (migration 0022: `session_holdings`, `session_owners`).

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

from collections.abc import Container, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from streamspace.auth.principal import STANDING_COLUMNS, STANDING_CTE
from streamspace.config import environment
from streamspace.db import HotStatement, connection, fetch_all, fetch_one
from streamspace.desktop import store as desktop_store
from streamspace.domain.duration import DurationError, parse_duration
from streamspace.domain.errors import ValidationError
from streamspace.domain.names import is_username_label
from streamspace.domain.quantity import cpu_millis, parse_memory
from streamspace.domain.resources import normalise_resources

if TYPE_CHECKING:
    from streamspace.db import Connection

    Conn = Connection

HOLDING = ("running", "hibernated")

# Writes of the API that carry a Session's metadata.generation (%(gen)s, None: unknown) record it,
# and never apply over a row that already reflects a newer one: the API server's answers to two
# concurrent changes may commit here in either order, and the newer spec must stay.
_GENERATION_SET = " generation = greatest(generation, %(gen)s::bigint)"
_GENERATION_NOT_OLDER = "(%(gen)s::bigint IS NULL OR generation IS NULL OR generation <= %(gen)s::bigint)"

# A live connection `c` (computed at read time, never by a background job): no disconnect, and a
# heartbeat inside the window of %(window)s seconds. Every statement that counts or keeps live
# connections says it with this text.
LIVE_CONNECTION = "c.disconnected_at IS NULL AND c.last_heartbeat > now() - make_interval(secs => %(window)s)"


def heartbeat_window() -> int:
    return environment().heartbeat_window_seconds


def _amounts(spec: Mapping[str, Any]) -> tuple[tuple[int, int], tuple[int, int]]:
    """((cpu millicores, memory bytes) of a spec's limits, the same of its requests); 0 for what is
    absent or unreadable."""
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
    try:
        return parse_duration(value, "duration")
    except DurationError:
        return None


def insert(conn: Conn, *, namespace: str, name: str, user_id: str, username: str, template: str,
           state: str, cpu_millis: int, memory_bytes: int, cpu_request_millis: int, memory_request_bytes: int,
           storage_bytes: int, persistent_home: bool, idle_timeout_seconds: int | None,
           max_duration_seconds: int | None, tags: list[str]) -> bool:
    """The row of a Session the API is about to create (after quotas.check_and_reserve). False: the
    name is taken (nothing written)."""
    return conn.execute(
        "INSERT INTO sessions (namespace, name, user_id, username, template, state, cpu_millis, memory_bytes,"
        " cpu_request_millis, memory_request_bytes, storage_bytes, persistent_home, idle_timeout_seconds,"
        " max_duration_seconds, tags)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (namespace, name) DO NOTHING RETURNING 1",
        (namespace, name, user_id, username, template, state, cpu_millis, memory_bytes, cpu_request_millis,
         memory_request_bytes, storage_bytes, persistent_home, idle_timeout_seconds, max_duration_seconds,
         tags)).fetchone() is not None


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
    another holding persistent-home session of the same user, and end the session's desktop tickets
    and cookies."""
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
    # Whatever the row says later (a late event, an operator's edit back to running), no ticket or
    # cookie issued while it held opens its desktop again: a new one is needed.
    desktop_store.end_session_access(conn, namespace, name)


def set_state(conn: Conn, namespace: str, name: str, state: str, *, reset_activity: bool = False,
              generation: int | None = None) -> bool:
    """Record a new desired state; `terminated` releases the row's quota and ends its desktop access.
    `generation`: the Session's metadata.generation that carries this state (the API server's answer
    to the change); a row that already reflects a newer generation is left alone. False: no such row,
    or it was newer."""
    if state not in (*HOLDING, "terminated"):
        raise ValueError(f"unknown session state {state!r}")
    if state == "terminated":
        release(conn, namespace, name)
    row = conn.execute(
        "UPDATE sessions SET state = %(state)s, updated_at = now(),"  # noqa: S608 (constants only)
        " last_activity = CASE WHEN %(reset)s THEN now() ELSE last_activity END," + _GENERATION_SET +
        " WHERE namespace = %(ns)s AND name = %(name)s AND " + _GENERATION_NOT_OLDER + " RETURNING 1",
        {"state": state, "reset": reset_activity, "ns": namespace, "name": name, "gen": generation}).fetchone()
    return row is not None


# Exclusive states of the live sessions (the sessions_running_created index's predicate: terminated
# rows, which pile up, are never read): failed (phase Failed), hibernated, running (phase Running),
# pending (the rest of those wanted running: scheduling, pulling, starting).
_LIVE_BY_STATE_SQL = """
SELECT count(*) FILTER (WHERE phase <> 'Failed' AND state = 'running' AND phase <> 'Running') AS pending,
       count(*) FILTER (WHERE phase <> 'Failed' AND state = 'running' AND phase = 'Running') AS running,
       count(*) FILTER (WHERE phase <> 'Failed' AND state = 'hibernated') AS hibernated,
       count(*) FILTER (WHERE phase = 'Failed') AS failed
  FROM sessions WHERE state <> 'terminated'
"""


def live_counts_by_state(conn: Conn) -> dict[str, int]:
    """{pending, running, hibernated, failed}: how many live sessions are in each state now."""
    row = conn.execute(_LIVE_BY_STATE_SQL).fetchone() or {}  # an aggregate: always one row
    return {key: int(value) for key, value in row.items()}


# The platform summary's session columns (metrics/store.py composes them into its one statement):
# sessions by state and live connections, everyone's (%(all)s) or the user %(uid)s's, connections
# live inside %(window)s seconds.
SUMMARY_COLUMNS = """
  (SELECT count(*) FILTER (WHERE state = 'running') FROM sessions s WHERE %(all)s OR s.user_id = %(uid)s::uuid)
    AS running,
  (SELECT count(*) FILTER (WHERE state = 'hibernated') FROM sessions s WHERE %(all)s OR s.user_id = %(uid)s::uuid)
    AS hibernated,
  (SELECT count(*) FILTER (WHERE state <> 'terminated') FROM sessions s WHERE %(all)s OR s.user_id = %(uid)s::uuid)
    AS total,
  (SELECT count(*) FROM connections c
     WHERE """ + LIVE_CONNECTION + """
       AND (%(all)s OR c.user_id = %(uid)s::uuid)) AS connections"""  # noqa: S608 - constants only

# Every session by state and the cpu and memory running sessions hold: one row (the cluster block).
CLUSTER_TOTALS_SQL = """
SELECT count(*) FILTER (WHERE state = 'running') AS running,
       count(*) FILTER (WHERE state = 'hibernated') AS hibernated,
       count(*) FILTER (WHERE state <> 'terminated') AS total,
       coalesce(sum(cpu_millis) FILTER (WHERE state = 'running'), 0) AS cpu_millis,
       coalesce(sum(memory_bytes) FILTER (WHERE state = 'running'), 0) AS memory_bytes
  FROM sessions"""


def remove(conn: Conn, namespace: str, name: str) -> bool:
    """Drop a Session's row (and its connections). False: there was none."""
    release(conn, namespace, name)
    row = conn.execute("DELETE FROM sessions WHERE namespace = %s AND name = %s RETURNING 1",
                       (namespace, name)).fetchone()
    return row is not None


def update_status(conn: Conn, namespace: str, name: str, status: Mapping[str, Any], *,
                  uid: str | None = None, generation: int | None = None) -> bool:
    """Copy a Session's status (phase, url, podName, message, observedGeneration) into its row, and
    the uid and generation of the object just created (the API's create)."""
    row = conn.execute(
        "UPDATE sessions SET phase = coalesce(%(phase)s, phase), url = %(url)s, pod_name = %(pod)s,"  # noqa: S608
        " message = %(message)s, observed_generation = coalesce(%(observed)s, observed_generation),"
        " uid = coalesce(%(uid)s, uid), updated_at = now()," + _GENERATION_SET +
        " WHERE namespace = %(ns)s AND name = %(name)s RETURNING 1",
        {"phase": status.get("phase"), "url": status.get("url"), "pod": status.get("podName"),
         "message": status.get("message"), "observed": status.get("observedGeneration"), "uid": uid,
         "gen": generation, "ns": namespace, "name": name}).fetchone()
    return row is not None


def upsert_from_object(conn: Conn, obj: Mapping[str, Any], *, replaces: str | None = None) -> bool:
    """Make the row match a Session object as found on the cluster (spec and status).

    Keyed by the Session's uid and generation: the row is written only when it is this Session's and
    does not already reflect a newer generation of its spec, when it is the API's reservation not yet
    bound to a uid, or when it is the row of `replaces` (the uid of the earlier Session of this name,
    which the caller checked is no longer on the cluster). A copy from before a change (a late event,
    a slow reconcile) or of another Session of the same name changes nothing: False.

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
    uid, generation = meta.get("uid") or None, meta.get("generation") or None
    current = conn.execute("SELECT uid, generation FROM sessions WHERE namespace = %s AND name = %s FOR UPDATE",
                           (namespace, name)).fetchone()
    if current is not None and not _may_overwrite(current, uid, generation, replaces):
        return False
    (cpu, memory), (cpu_request, memory_request) = _amounts(spec)
    state = spec.get("state") if spec.get("state") in (*HOLDING, "terminated") else "running"
    if state == "terminated":
        release(conn, namespace, name)
    tags = [str(t) for t in spec.get("tags") or [] if isinstance(t, str)]
    written = conn.execute(
        "INSERT INTO sessions (namespace, name, user_id, username, template, state, phase, url, pod_name, message,"
        " cpu_millis, memory_bytes, cpu_request_millis, memory_request_bytes, persistent_home,"
        " idle_timeout_seconds, max_duration_seconds, tags, uid, generation, observed_generation, created_at)"
        " VALUES (%(ns)s, %(name)s, (SELECT id FROM users WHERE username = %(owner)s), %(user)s, %(template)s,"
        "  %(state)s, %(phase)s, %(url)s, %(pod)s, %(message)s, %(cpu)s, %(memory)s, %(cpu_request)s,"
        "  %(memory_request)s, %(home)s, %(idle)s, %(max)s,"
        "  %(tags)s, %(uid)s, %(generation)s, %(gen)s, coalesce(%(created)s::timestamptz, now()))"
        " ON CONFLICT (namespace, name) DO UPDATE SET template = EXCLUDED.template, state = EXCLUDED.state,"
        "  phase = EXCLUDED.phase, url = EXCLUDED.url, pod_name = EXCLUDED.pod_name, message = EXCLUDED.message,"
        "  cpu_millis = EXCLUDED.cpu_millis, memory_bytes = EXCLUDED.memory_bytes,"
        "  cpu_request_millis = EXCLUDED.cpu_request_millis, memory_request_bytes = EXCLUDED.memory_request_bytes,"
        "  persistent_home = EXCLUDED.persistent_home, idle_timeout_seconds = EXCLUDED.idle_timeout_seconds,"
        "  max_duration_seconds = EXCLUDED.max_duration_seconds, tags = EXCLUDED.tags, uid = EXCLUDED.uid,"
        "  generation = CASE WHEN sessions.uid = EXCLUDED.uid THEN greatest(sessions.generation, EXCLUDED.generation)"
        "               ELSE EXCLUDED.generation END,"
        "  observed_generation = CASE WHEN sessions.uid = EXCLUDED.uid"
        "   THEN coalesce(EXCLUDED.observed_generation, sessions.observed_generation)"
        "   ELSE EXCLUDED.observed_generation END,"
        "  updated_at = now()"
        # The rule of _may_overwrite again, for a row inserted since the check found none.
        " WHERE (sessions.uid IS NULL OR sessions.uid = EXCLUDED.uid OR sessions.uid = %(replaces)s)"
        "   AND (sessions.uid IS DISTINCT FROM EXCLUDED.uid OR sessions.generation IS NULL"
        "        OR EXCLUDED.generation IS NULL OR sessions.generation <= EXCLUDED.generation)"
        " RETURNING 1",
        {"ns": namespace, "name": name, "user": str(spec.get("user") or ""),
         "owner": str(spec.get("user") or "") if is_username_label(str(spec.get("user") or "")) else None,
         "template": str(spec.get("template") or ""),
         "state": state, "phase": status.get("phase") or "Pending", "url": status.get("url"),
         "pod": status.get("podName"), "message": status.get("message"), "cpu": cpu, "memory": memory,
         "cpu_request": cpu_request, "memory_request": memory_request,
         "home": spec.get("persistentHome", True) is not False, "idle": _seconds(spec.get("idleTimeout", "30m")),
         "max": _seconds(spec.get("maxSessionDuration", "8h")), "tags": tags, "uid": uid, "generation": generation,
         "gen": status.get("observedGeneration"), "created": meta.get("creationTimestamp"),
         "replaces": replaces}).fetchone()
    return written is not None


def _may_overwrite(current: Mapping[str, Any], uid: str | None, generation: int | None,
                   replaces: str | None) -> bool:
    """Whether a Session (uid, generation) may overwrite the row `current` (its uid and generation)."""
    if current["uid"] is not None and current["uid"] != uid:
        return replaces is not None and current["uid"] == replaces
    return current["uid"] is None or current["generation"] is None or generation is None \
        or int(current["generation"]) <= int(generation)


# -- the API's reads --------------------------------------------------------------------------

# The columns of one listed session, shared by the list and the single-row read, in the order of
# SESSION_FIELDS (the list's rows are tuples in this order).
_SESSION_COLUMNS = (
    "s.namespace, s.name, s.user_id::text AS user_id, s.username, s.template, s.state, s.phase, s.url,"  # noqa: S608
    " s.pod_name, s.message, s.cpu_millis, s.memory_bytes, s.cpu_request_millis, s.memory_request_bytes,"
    " s.persistent_home, s.idle_timeout_seconds,"
    " s.max_duration_seconds, s.tags, s.start_kind, s.expected_ready_seconds,"
    " to_char(s.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS created_at,"
    " to_char(s.last_activity AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS last_activity,"
    " (SELECT count(*) FROM connections c WHERE c.session_namespace = s.namespace AND c.session_name = s.name"
    "   AND " + LIVE_CONNECTION + ")"
    " AS active_connections"
)
SESSION_FIELDS = ("namespace", "name", "user_id", "username", "template", "state", "phase", "url", "pod_name",
                  "message", "cpu_millis", "memory_bytes", "cpu_request_millis", "memory_request_bytes",
                  "persistent_home", "idle_timeout_seconds", "max_duration_seconds", "tags", "start_kind",
                  "expected_ready_seconds", "created_at", "last_activity", "active_connections")

# The list's optional filters: a statement holds only the conditions of the filters given, so each
# combination is its own prepared statement and a generic plan can still use an index (it cannot for
# `(%(x)s IS NULL OR col = %(x)s)`). Without a window count over every matching row, the page is read
# in index order and stops at LIMIT; the total is one count, evaluated once per statement.
#
# The caller's standing is read by the same statement (auth.principal.STANDING_CTE: one round trip
# per list): the rows join `standing`, so a refused caller reads nothing. Whose rows a caller reads is
# one of two scopes, each its own statement: an admin's reads every row and holds only while the
# database says admin; a user's reads the caller's own rows (the user index).
_LIST_FILTERS = (
    ("uid", "s.user_id = %(uid)s::uuid"),
    ("username", "s.username = %(username)s::text"),
    ("state", "s.state = %(state)s::text"),
    ("template", "s.template = %(template)s::text"),
)
LIST_SCOPES = {"admin": "standing.role = 'admin'", "own": "s.user_id = %(caller_sub)s::uuid"}
# After a page row's SESSION_FIELDS: the standing (STANDING_COLUMNS), the total, the owner's change
# mark, until when a kept page's live counts hold, whether the kept page still holds, the row's
# digest, and which part of the answer the row is (0: the one head row, 1: a session).
_LIST_HEAD = ("caller_exists", "caller_username", "caller_role", "caller_active", "caller_revoked", "total",
              "mark", "until", "kept")
# What a caller passes when it keeps no page: a mark no owner has (marks are random version-4 UUIDs;
# an owner without a mark row reads as the nil UUID).
NOTHING_KEPT = ("ffffffff-ffff-ffff-ffff-ffffffffffff", "-infinity")


@lru_cache(maxsize=len(LIST_SCOPES) * 2 ** len(_LIST_FILTERS))
def _list_statement(scope: str, given: frozenset[str]) -> HotStatement:
    """The page statement of `scope` with the filters `given`, as a hot statement (every list runs one)."""
    name = "_".join(("session_list", scope, *(n for n, _ in _LIST_FILTERS if n in given)))
    return HotStatement(name, _list_sql(scope, given))


def _list_sql(scope: str, given: frozenset[str]) -> str:
    """The page statement of `scope` with the filters `given`. It answers one head row first (the
    caller's standing, STANDING_COLUMNS, and the total; its session fields null), then the page's
    sessions (their head fields null): what is the same for every row is sent once. Each session
    row carries `digest`, the SHA-256 of all its listed values (SESSION_FIELDS) as one text: equal
    digests, equal rows.

    A caller that kept the page it was answered before passes that answer's `mark` and `until` as
    %(kept_mark)s and %(kept_until)s (NOTHING_KEPT: none). When the caller stands, its owner mark
    (migration 0024: every committed change of its sessions and their connections gives it a new
    value) is still that one, and now() is before `until` (the moment the page's oldest counted
    live connection leaves the heartbeat window: a live count falls by time alone), the head row
    says `kept` and Postgres neither reads nor counts the page (a one-time filter: the page's plan
    is never executed). The mark and the page are read in one snapshot, so a page answered with
    mark m is the page as of mark m. Composed from constants only, every value is a bound parameter."""
    where = (" WHERE s.namespace = %(ns)s AND " + LIST_SCOPES[scope]
             + "".join(f" AND {cond}" for name, cond in _LIST_FILTERS if name in given))
    head_nulls = ", ".join(f"NULL AS {name}" for name in _LIST_HEAD)
    session_nulls = ", ".join(f"NULL AS {name}" for name in SESSION_FIELDS)
    return ("WITH " + STANDING_CTE + ","  # noqa: S608
            " mark AS (SELECT coalesce((SELECT m.mark FROM session_list_marks m WHERE m.owner = %(caller_sub)s::uuid),"
            "  '00000000-0000-0000-0000-000000000000') AS mark),"
            " kept AS (SELECT mark.mark, EXISTS (SELECT 1 FROM standing) AND mark.mark = %(kept_mark)s::uuid"
            "  AND now() < %(kept_until)s::timestamptz AS kept FROM mark),"
            " page AS (SELECT " + _SESSION_COLUMNS
            + " FROM sessions s, standing" + where + " AND NOT (SELECT kept FROM kept)"
            " ORDER BY s.created_at DESC, s.name LIMIT %(limit)s OFFSET %(offset)s)"
            " SELECT " + session_nulls + ", " + STANDING_COLUMNS + ","
            " CASE WHEN (SELECT kept FROM kept) THEN NULL ELSE (SELECT count(*) FROM sessions s, standing"
            + where + ") END AS total,"
            " (SELECT mark::text FROM kept) AS mark,"
            " CASE WHEN (SELECT kept FROM kept) THEN NULL ELSE coalesce(((SELECT min((SELECT min(c.last_heartbeat)"
            "   FROM connections c WHERE c.session_namespace = page.namespace AND c.session_name = page.name"
            "    AND " + LIVE_CONNECTION + ")) FROM page WHERE page.active_connections > 0)"
            "  + make_interval(secs => %(window)s))::text, 'infinity') END AS until,"
            " (SELECT kept FROM kept) AS kept,"
            " NULL::bytea AS digest, 0 AS part"
            " UNION ALL SELECT page.*, " + head_nulls + ", sha256(convert_to(page::text, 'UTF8')), 1 FROM page"
            " ORDER BY part, created_at DESC, name")


_ROW_SQL = ("SELECT " + _SESSION_COLUMNS  # noqa: S608
            + " FROM sessions s WHERE s.namespace = %(ns)s AND s.name = %(name)s")


def listed_page(namespace: str, standing: Mapping[str, str | None], scope: str,
                filters: Mapping[str, str | None], limit: int, offset: int, known: Container[bytes] = (),
                kept: tuple[str, str] = NOTHING_KEPT,
                ) -> tuple[dict[str, Any], list[tuple[bytes, tuple[Any, ...] | None]], int | None]:
    """ONE statement: (the caller's standing row, one page of rows as the API lists them, the total
    matching) for the caller `standing` names (its Claimant.params), read in `scope` (LIST_SCOPES)
    with the filters given (uid, username, state, template; None: not filtered).

    A page row is (its digest: equal digests, equal values; its values, a tuple that starts with
    SESSION_FIELDS in that order, or None when its digest is in `known`, for a caller that kept what
    it made of that row and need not decode it again). Tuples: a dict per row costs as much as
    reading the row.

    `kept`: the (mark, until) of the head row of a page the caller kept (see _list_sql). The head row
    holds `mark` and `until` of this answer, and `kept`: True when the kept page still holds, and
    then no page row and no total (None) came."""
    params = {**standing, **{name: filters.get(name) for name, _ in _LIST_FILTERS}, "ns": namespace,
              "limit": limit, "offset": offset, "window": heartbeat_window(), "kept_mark": kept[0],
              "kept_until": kept[1]}
    statement = _list_statement(scope, frozenset(k for k, _ in _LIST_FILTERS if params[k] is not None))
    with connection() as conn:
        rows = statement.run_keyed(conn, params, "digest", known)
    if not rows or rows[0][0] is not None or rows[0][1] is None or rows[0][1][-1] != 0 \
            or statement.columns != (*SESSION_FIELDS, *_LIST_HEAD, "digest", "part"):
        raise RuntimeError("invariant broken: the list statement answered no head row, or other columns")
    fields = len(SESSION_FIELDS)
    head = dict(zip(_LIST_HEAD, rows[0][1][fields:-2], strict=True))
    if head["kept"]:
        if len(rows) > 1:
            raise RuntimeError("invariant broken: a kept page came with rows")
        return head, [], None
    return head, rows[1:], int(head["total"])  # type: ignore[return-value]  # (page rows have a digest)


def listed_row(namespace: str, name: str) -> dict[str, Any] | None:
    """One session's row as the API lists it."""
    return fetch_one(_ROW_SQL, {"ns": namespace, "name": name, "window": heartbeat_window()})


def profile_agent_stands(namespace: str, name: str, user_id: str, grace_seconds: int) -> bool:
    """Whether this user's session may still use its profile agent: it runs or hibernates, or was ended
    less than `grace_seconds` ago (its last save happens on the way out)."""
    return fetch_one(
        "SELECT 1 FROM sessions WHERE namespace = %s AND name = %s AND user_id = %s"
        " AND (state <> 'terminated' OR updated_at > now() - make_interval(secs => %s))",
        (namespace, name, user_id, grace_seconds)) is not None


def set_limits(conn: Conn, namespace: str, name: str, *, idle_seconds: int | None, max_seconds: int | None,
               tags: list[str] | None, generation: int | None = None) -> None:
    """Record new limits and tags; None leaves that one as it is. `generation` as for set_state."""
    conn.execute(
        "UPDATE sessions SET"
        " idle_timeout_seconds = CASE WHEN %(set_idle)s THEN %(idle)s ELSE idle_timeout_seconds END,"
        " max_duration_seconds = CASE WHEN %(set_max)s THEN %(max)s ELSE max_duration_seconds END,"
        " tags = CASE WHEN %(set_tags)s THEN %(tags)s::text[] ELSE tags END, updated_at = now()," + _GENERATION_SET +
        " WHERE namespace = %(ns)s AND name = %(name)s AND " + _GENERATION_NOT_OLDER,
        {"set_idle": idle_seconds is not None, "idle": idle_seconds, "set_max": max_seconds is not None,
         "max": max_seconds, "set_tags": tags is not None, "tags": tags or [], "ns": namespace, "name": name,
         "gen": generation})


# -- connections ----------------------------------------------------------------------------------

def open_connection(conn: Conn, namespace: str, name: str, user_id: str, username: str, client_ip: str,
                    user_agent: str) -> str:
    """A new connection record; its id."""
    row = conn.execute(
        "INSERT INTO connections (session_namespace, session_name, user_id, username, client_ip, user_agent)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id::text AS id",
        (namespace, name, user_id, username, client_ip, user_agent)).fetchone()
    if row is None:  # INSERT ... RETURNING answers its row or raises
        raise RuntimeError("a new connection was not returned")
    return str(row["id"])


# The hot path: ONE statement per heartbeat, the caller's standing included.
#
# STANDING_CTE makes exactly the checks of streamspace.auth.principal.authenticate (the same SQL):
# the token's user exists and is active, and its login (token family) is not revoked; the role comes
# from the database, not the token. Nothing is written for a refused caller (`s` joins `standing`).
# The connection must be live (no disconnect, heartbeat inside the
# window) and belong to a session the caller may reach. The session's activity moves with it, at
# most every ACTIVITY_RESOLUTION_SECONDS (idle timeouts are minutes; this keeps a session with many
# viewers from rewriting its row on every beat). The transaction commits without waiting for the
# WAL flush (synchronous_commit off, for this statement only): a crash can lose the last fraction
# of a second of heartbeats, which costs nothing, and never corrupts or reorders anything.
ACTIVITY_RESOLUTION_SECONDS = 10
# Composed from constants only; every value is a bound parameter.
_HEARTBEAT_SQL = (
    "WITH " + STANDING_CTE + ","  # noqa: S608
    " s AS (SELECT x.namespace, x.name FROM sessions x, standing"
    "        WHERE x.namespace = %(ns)s AND x.name = %(name)s"
    "          AND (standing.role = 'admin' OR x.user_id = %(caller_sub)s::uuid)),"
    " c AS (UPDATE connections c SET last_heartbeat = now() FROM s"
    "        WHERE c.id = %(cid)s::uuid AND c.session_namespace = s.namespace AND c.session_name = s.name"
    "          AND " + LIVE_CONNECTION +
    "        RETURNING c.session_namespace, c.session_name),"
    " a AS (UPDATE sessions x SET last_activity = now() FROM c"
    "        WHERE x.namespace = c.session_namespace AND x.name = c.session_name"
    "          AND x.last_activity < now() - make_interval(secs => %(resolution)s) RETURNING 1),"
    # A lost heartbeat is harmless (the next one follows within seconds): skip the WAL flush wait.
    " commit_mode AS (SELECT set_config('synchronous_commit', 'off', true) AS mode)"
    " SELECT " + STANDING_COLUMNS + ","
    "        (SELECT count(*) FROM c) AS updated, (SELECT count(*) FROM a) AS touched,"
    "        (SELECT mode FROM commit_mode) AS commit_mode"
)
_HEARTBEAT = HotStatement("session_heartbeat", _HEARTBEAT_SQL)


def heartbeat(namespace: str, name: str, connection_id: str,
              standing: Mapping[str, str | None]) -> dict[str, Any] | None:
    """Keep a live connection of the session alive, for the caller `standing` names (its
    Claimant.params). The row holds STANDING_COLUMNS (the caller as it stands) and `updated` (1: the
    connection was live and is the caller's to keep, or the caller is an admin)."""
    return _HEARTBEAT.fetch_one({**standing, "ns": namespace, "name": name, "cid": connection_id,
                                 "window": heartbeat_window(), "resolution": ACTIVITY_RESOLUTION_SECONDS})


_DISCONNECT_SQL = (
    "WITH s AS (SELECT namespace, name FROM sessions"  # noqa: S608
    "            WHERE namespace = %(ns)s AND name = %(name)s AND (%(admin)s OR user_id = %(uid)s::uuid)),"
    " d AS (UPDATE connections c SET disconnected_at = now() FROM s"
    "        WHERE c.id = %(cid)s::uuid AND c.session_namespace = s.namespace AND c.session_name = s.name"
    "          AND c.disconnected_at IS NULL RETURNING c.id),"
    " a AS (UPDATE sessions x SET last_activity = now() FROM s, d"
    "        WHERE x.namespace = s.namespace AND x.name = s.name RETURNING 1)"
    " SELECT (SELECT count(*) FROM s) AS found, (SELECT count(*) FROM d) AS disconnected,"
    "        (SELECT count(*) FROM connections c, s WHERE c.session_namespace = s.namespace"
    "          AND c.session_name = s.name AND c.id <> %(cid)s::uuid AND " + LIVE_CONNECTION + ") AS active"
)


def disconnect(namespace: str, name: str, connection_id: str, owner_id: str | None) -> dict[str, int]:
    """Close a connection: {found: the session (as owner_id may reach it), disconnected: the connection
    was open, active: the session's other live connections}."""
    row = fetch_one(_DISCONNECT_SQL, {"ns": namespace, "name": name, "admin": owner_id is None, "uid": owner_id,
                                      "cid": connection_id, "window": heartbeat_window()})
    row = row or {"found": 0, "disconnected": 0, "active": 0}
    return {"found": int(row["found"]), "disconnected": int(row["disconnected"]), "active": int(row["active"])}


def live_connections(namespace: str, name: str) -> list[dict[str, Any]]:
    """The session's live connections (not closed, a heartbeat inside the window), oldest first."""
    return fetch_all(
        "SELECT c.id::text AS id, c.username, c.client_ip, c.user_agent, c.connected_at, c.last_heartbeat"  # noqa: S608
        "  FROM connections c WHERE c.session_namespace = %(ns)s AND c.session_name = %(name)s"
        "   AND " + LIVE_CONNECTION +
        " ORDER BY c.connected_at",
        {"ns": namespace, "name": name, "window": heartbeat_window()})


def set_expected_start(conn: Conn, namespace: str, name: str, kind: str, seconds: float | None) -> None:
    """What was expected of the session's start when it was launched (warm, cached, cold; seconds)."""
    conn.execute("UPDATE sessions SET start_kind = %s, expected_ready_seconds = %s WHERE namespace = %s AND name = %s",
                 (kind, seconds, namespace, name))
