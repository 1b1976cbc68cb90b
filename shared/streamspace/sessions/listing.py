"""The session list: the pages of sessions a caller may see, as the contract's Session objects.

GET /api/v1/sessions (a user's own, an admin's everyone's or one user's), an admin's view of one
user's sessions (GET /api/v1/users/{id}/sessions), the portal's lists and the live updates' message
all read the session index through here, never the cluster. Apart from the operations on one session
(streamspace.sessions.service), so that a function that only lists (users, the live updates) does
not import what creating a session needs (Templates, warm pools, quotas, the platform settings).
"""

from __future__ import annotations

import threading
from collections.abc import Container, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from streamspace.auth.principal import Claimant
from streamspace.auth.users.service import load_user, parse_uuid
from streamspace.config import environment
from streamspace.db import connection
from streamspace.domain.duration import format_duration
from streamspace.domain.errors import Forbidden, ValidationError
from streamspace.domain.names import user_label
from streamspace.domain.quantity import format_cpu, format_memory
from streamspace.domain.sessions import DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_SESSION_DURATION
from streamspace.encoding import dumps
from streamspace.records import record
from streamspace.sessions import store

if TYPE_CHECKING:
    from streamspace.auth.principal import Principal

STATES = ("running", "hibernated", "terminated")


# Formatting the same few values over and over (every list): remember them.
_user_label = lru_cache(maxsize=4096)(user_label)
_duration_text = lru_cache(maxsize=1024)(format_duration)
_memory_text = lru_cache(maxsize=1024)(format_memory)
_cpu_text = lru_cache(maxsize=1024)(format_cpu)


def _resources_text(cpu: int | None, memory: int | None) -> dict[str, str | None]:
    """Amounts from the index -> quantity text; 0 or NULL (unknown, or a row from before requests
    were indexed) reads as null."""
    return {"memory": _memory_text(memory) if memory else None, "cpu": _cpu_text(cpu) if cpu else None}


def row_to_api(row: Sequence[Any]) -> dict[str, Any]:
    """A listed index row (store.SESSION_FIELDS, in that order) -> the contract's Session object
    (status from the row: phase, url, podName, lastActivity; usage and conditions live on the
    Session object only). Timestamps arrive as RFC 3339 text from the query; this runs per listed
    session, so it stays lean."""
    (namespace, name, _, username, template, state, phase, url, pod_name, message, cpu, memory, cpu_request,
     memory_request, persistent_home, idle, longest, tags, start_kind, expected_ready, created_at, last_activity,
     active_connections) = row[:_FIELDS]
    limits = _resources_text(cpu, memory)
    return {
        "name": name,
        "namespace": namespace,
        "user": _user_label(username),
        "template": template,
        "state": state,
        "persistentHome": persistent_home,
        "idleTimeout": DEFAULT_IDLE_TIMEOUT if idle is None else _duration_text(idle),
        "maxSessionDuration": DEFAULT_MAX_SESSION_DURATION if longest is None else _duration_text(longest),
        "resources": {**limits, "requests": _resources_text(cpu_request, memory_request), "limits": limits},
        "tags": tags or [],
        "status": {"phase": phase, "podName": pod_name, "url": url, "lastActivity": last_activity,
                   "resourceUsage": {"memory": None, "cpu": None}, "conditions": [], "message": message,
                   "startKind": start_kind, "expectedReadySeconds": expected_ready},
        "createdAt": created_at,
        "activeConnections": active_connections,
    }


_FIELDS = len(store.SESSION_FIELDS)


def list_sessions(caller: Principal, *, user: str | None = None, state: str | None = None,
                  template: str | None = None, limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """The caller's sessions (an admin: everyone's, or one user's with `user`). Index only."""
    return list_claimed_sessions(Claimant.of(caller), user=user, state=state, template=template, limit=limit,
                                 offset=offset)[1]


def user_sessions(caller: Principal, user_id: str, limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """One user's sessions, by user id (an admin's view of a user): the same objects as the list."""
    user_id = parse_uuid(user_id)
    with connection() as conn:
        load_user(conn, user_id)  # 404 for an unknown user
    listed = _listing(Claimant.of(caller), {"uid": user_id}, limit, offset)
    return _as_listing(listed.rows, listed.total)


def list_claimed_sessions(claimant: Claimant, *, user: str | None = None, state: str | None = None,
                          template: str | None = None, limit: int = 100,
                          offset: int = 0) -> tuple[Principal, dict[str, Any]]:
    """`list_sessions` in ONE statement with the caller's standing: (the caller as it stands, the list)."""
    listed = _claimed_rows(claimant, user, state, template, limit, offset, ())
    return listed.caller, _as_listing(listed.rows, listed.total)


def _as_listing(rows: list[tuple[bytes, tuple[Any, ...] | None]], total: int | None) -> dict[str, Any]:
    """The list's answer from store.listed_page's rows, every one decoded (nothing was `known`)."""
    sessions = []
    for _, values in rows:
        if values is None:
            raise RuntimeError("invariant broken: a listed row was not decoded")
        sessions.append(row_to_api(values))
    if total is None:
        raise RuntimeError("invariant broken: a kept page was answered where none was kept")
    return {"sessions": sessions, "total": total}


# The JSON of listed sessions, by the digest of the values it was made of (store.listed_page): a
# session that did not change since it was last listed is neither decoded nor rendered again. Safe to
# share between callers: a digest stands for every value the JSON is made of, and the caller's
# right to see the row is decided by the statement that answered it. Bounded: a full map is dropped
# for a new one (a miss costs one rendering).
_RENDERED_MAX = 4096
_rendered: dict[bytes, bytes] = {}

# Whole answers of a user's list of its own sessions, per question (the caller, the filters, the
# page, the namespace and heartbeat window), with the (mark, until) of the statement that made them
# (store._list_sql). The statement that reads the caller's standing also says whether the answer
# still holds: the owner's change mark is unchanged and no counted live connection has left the
# heartbeat window since; then Postgres reads no page and the kept bytes are answered, exactly what
# that statement would make now. Only an answer made for a caller whose standing the same statement
# accepted is kept, and it is only answered to that caller after its standing was accepted again.
# An admin's list (everyone's sessions) is never kept: it would need a mark every session write in
# the platform takes (one row lock for all of them, at every commit) and it would change with any
# activity of anyone's session. Bounded by size: a full map is dropped for a new one.
_ANSWERS_MAX_BYTES = 16 * 2**20
_answers: dict[tuple[Any, ...], tuple[tuple[str, str], bytes]] = {}
_answers_bytes = 0  # the size of the answers in _answers, exactly
_kept_answers = 0
# Held while _answers, _answers_bytes or _kept_answers change (the server's threads share them): a
# few instructions each time, beside a list statement's round trip.
_answers_lock = threading.Lock()


def kept_answer_count() -> int:
    """How many lists this process answered with a kept answer (tests and benchmarks read it)."""
    return _kept_answers


def kept_answers_size() -> int:
    """The bytes of the answers this process keeps, as it counts them (tests read it)."""
    return _answers_bytes


def _keep_answer(question: tuple[Any, ...], mark: tuple[str, str], answer: bytes) -> None:
    """Keep `answer` to `question`, in place of an earlier answer to it; a map that would grow past
    _ANSWERS_MAX_BYTES is dropped for a new one."""
    global _answers, _answers_bytes
    with _answers_lock:
        earlier = _answers.get(question)
        size = _answers_bytes - (len(earlier[1]) if earlier is not None else 0) + len(answer)
        if size > _ANSWERS_MAX_BYTES:
            _answers, size = {}, len(answer)
        _answers[question] = (mark, answer)
        _answers_bytes = size


def list_claimed_sessions_json(claimant: Claimant, *, user: str | None = None, state: str | None = None,
                               template: str | None = None, limit: int = 100,
                               offset: int = 0) -> tuple[Principal, bytes]:
    """`list_claimed_sessions` as the JSON bytes the API answers (encoding.dumps of that list, byte
    for byte), for GET /api/v1/sessions."""
    global _rendered, _kept_answers
    rendered = _rendered  # this call's map: another thread may replace the module's, never empty this one
    if len(rendered) >= _RENDERED_MAX:
        rendered = _rendered = {}
    question = (claimant.user_id, user, state, template, limit, offset, environment().sessions_namespace,
                store.heartbeat_window())
    kept = _answers.get(question)
    listed = _claimed_rows(claimant, user, state, template, limit, offset, rendered,
                           kept[0] if kept is not None else store.NOTHING_KEPT)
    if listed.kept:
        if kept is None:
            raise RuntimeError("invariant broken: the list statement kept an answer that was not kept")
        with _answers_lock:
            _kept_answers += 1
        return listed.caller, kept[1]
    parts = []
    for digest, values in listed.rows:
        if values is not None:
            rendered[digest] = dumps(row_to_api(values))
        parts.append(rendered[digest])
    answer = b'{"sessions":[' + b",".join(parts) + b'],"total":' + str(listed.total).encode() + b"}"
    if listed.keepable:
        _keep_answer(question, listed.mark, answer)
    return listed.caller, answer


@record
class _Listed:
    """One list statement's answer, as the service reads it."""

    caller: Principal
    rows: list[tuple[bytes, tuple[Any, ...] | None]]
    total: int | None  # None: `kept`
    mark: tuple[str, str]  # the owner's change mark and until when the page's live counts hold
    kept: bool  # the page passed as kept still holds: no rows, no total came
    keepable: bool  # a page of the caller's own sessions, the caller's standing accepted


def _claimed_rows(claimant: Claimant, user: str | None, state: str | None, template: str | None, limit: int,
                  offset: int, known: Container[bytes], kept: tuple[str, str] = store.NOTHING_KEPT) -> _Listed:
    if state is not None and state not in STATES:
        raise ValidationError("state", f"expected one of {', '.join(STATES)}, got {state!r}")
    listed = _listing(claimant, {"username": user, "state": state, "template": template}, limit, offset, known, kept)
    caller = listed.caller
    if user is not None and user != caller.username and not caller.is_admin:
        raise Forbidden("only an admin may list another user's sessions", error="forbidden")
    return listed


def _listing(claimant: Claimant, filters: dict[str, str | None], limit: int, offset: int,
             known: Container[bytes] = (), kept: tuple[str, str] = store.NOTHING_KEPT) -> _Listed:
    """One page of the sessions the claimant may see that match `filters` (store.listed_page's
    rows). The scope (everyone's or the caller's own) follows the role the token claims; when the
    database says the role changed since, the other scope's statement runs (once). `kept` (a page of
    the caller's own sessions kept before) is passed to the own scope's statement only."""
    namespace = environment().sessions_namespace
    scope = "admin" if claimant.role == "admin" else "own"
    head, rows, total = store.listed_page(namespace, claimant.params, scope, filters, limit, offset, known,
                                          kept if scope == "own" else store.NOTHING_KEPT)
    caller = claimant.standing(head)
    if caller.is_admin != (scope == "admin"):
        scope = "admin" if caller.is_admin else "own"
        head, rows, total = store.listed_page(namespace, claimant.params, scope, filters, limit, offset, known,
                                              kept if scope == "own" else store.NOTHING_KEPT)
        caller = claimant.standing(head)
    own = scope == "own" and not caller.is_admin
    if head["kept"] and not own:
        raise RuntimeError("invariant broken: a list other than the caller's own sessions was answered as kept")
    return _Listed(caller=caller, rows=rows, total=total, mark=(head["mark"], head["until"] or ""),
                   kept=bool(head["kept"]), keepable=own and not head["kept"])


def sessions_update(caller: Principal) -> dict[str, Any]:
    """The contract's live-update message: the caller's sessions (an admin: all)."""
    listing = list_sessions(caller, limit=1000)
    return {"type": "sessions_update", "sessions": listing["sessions"], "count": listing["total"],
            "timestamp": datetime.now(UTC)}


__all__ = ["STATES", "kept_answer_count", "kept_answers_size", "list_claimed_sessions", "list_claimed_sessions_json",
           "list_sessions", "row_to_api", "sessions_update", "user_sessions"]
