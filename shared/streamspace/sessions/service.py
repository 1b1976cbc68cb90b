"""The /api/v1/sessions operations on sessions (the lists are streamspace.sessions.listing).

Ownership: every operation on one session first finds its index row and checks the caller may
reach it (owner or admin); a session of someone else answers 404, exactly like a missing one.

Create is one logical step: a transaction {quota check and reservation; insert the index row},
then the Session object is created on the cluster; if that fails the row is deleted again, and if
the database fails after the Session was created, the Session is deleted. Nothing stays reserved
or half-created.

Templates without a status yet (template-reconcile has not seen them) are accepted when their spec
validates (the same validation template-reconcile applies); a Template whose status says Invalid is
refused with its message.

Live updates (`listing.sessions_update` messages, pushed on every change) are streamed by
streamspace.sessions.live.
"""

from __future__ import annotations

import logging
import secrets
import string
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from streamspace import audit, kube
from streamspace.auth.principal import Claimant
from streamspace.auth.users.service import user_by_username
from streamspace.config import environment
from streamspace.db import transaction
from streamspace.desktop.access import issue_ticket, open_url
from streamspace.domain.duration import format_duration, parse_duration
from streamspace.domain.errors import Conflict, Forbidden, Invalid, NotFound, ValidationError
from streamspace.domain.names import SESSION_NAME_MAX, dns_label, is_dns_label, session_name, user_label
from streamspace.domain.quantity import cpu_millis, parse_memory
from streamspace.domain.quotas import Usage
from streamspace.domain.resources import canonical_resources
from streamspace.domain.sessions import (
    parse_state,
    parse_tags,
    resolve_resources,
    session_manifest,
    session_to_api,
)
from streamspace.domain.starts import predicted_kind
from streamspace.domain.templates import ensure_launchable, validate_template_spec
from streamspace.domain.warm import ANN_WARM_POD, wanted_image
from streamspace.quotas.service import check_and_reserve
from streamspace.sessions import starts_store, store, warm
from streamspace.settings.effective import load_config, session_url
from streamspace.settings.service import (
    RESOURCES_CPU,
    RESOURCES_MEMORY,
    SESSION_IDLE_TIMEOUT,
    SESSION_MAX_DURATION,
    STORAGE_DEFAULT_SIZE,
    platform_settings,
)
from streamspace.templates import store as template_store

if TYPE_CHECKING:
    from streamspace.auth.principal import Principal

log = logging.getLogger("streamspace.sessions")

CREATE_FIELDS = frozenset({"user", "template", "resources", "persistentHome", "idleTimeout", "maxSessionDuration",
                           "tags"})
PATCH_FIELDS = frozenset({"state", "idleTimeout", "maxSessionDuration", "tags"})
_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
_SUFFIX_LENGTH = 6
_NAME_ATTEMPTS = 4
_USER_AGENT_MAX = 512


def _not_found(name: str) -> NotFound:
    return NotFound(f"session {name!r} not found", error="not found")


def _reachable_session_row(caller: Principal, name: str) -> dict[str, Any]:
    """The index row of a session the caller may reach; 404 otherwise.

    A Session on the cluster that has no row yet (applied with kubectl, not indexed yet) is
    indexed here, so every route sees it the same way."""
    if not is_dns_label(name, SESSION_NAME_MAX):
        raise _not_found(name)
    row = store.listed_row(environment().sessions_namespace, name)
    if row is not None:
        if not caller.may_access(row["user_id"]):
            raise _not_found(name)
        return row
    obj = kube.get("Session", name, environment().sessions_namespace)
    if obj is None:
        raise _not_found(name)
    owner = (obj.get("spec") or {}).get("user")
    if not caller.is_admin and owner != user_label(caller.username):
        raise _not_found(name)
    with transaction() as conn:
        store.upsert_from_object(conn, obj)
    row = store.listed_row(environment().sessions_namespace, name)
    if row is None or not caller.may_access(row["user_id"]):
        raise _not_found(name)
    return row


def _with_index_status(api: dict[str, Any], row: Mapping[str, Any]) -> dict[str, Any]:
    # Heartbeats land in the index, not on the object: the row knows the latest activity, and what
    # was expected of the start when the session was launched.
    api["status"]["lastActivity"] = row["last_activity"]
    api["status"]["startKind"] = row["start_kind"]
    api["status"]["expectedReadySeconds"] = row["expected_ready_seconds"]
    return api


def get_session(caller: Principal, name: str) -> dict[str, Any]:
    row = _reachable_session_row(caller, name)
    obj = kube.get("Session", name, environment().sessions_namespace)
    if obj is None:
        raise _not_found(name)
    return _with_index_status(session_to_api(obj, int(row["active_connections"])), row)


# -- create ---------------------------------------------------------------------------------------

def _new_session_owner(caller: Principal, user: object) -> tuple[str, str]:
    """(user id, username) the new session belongs to."""
    if user is None or user == caller.username:
        return caller.user_id, caller.username
    if not isinstance(user, str) or not user:
        raise ValidationError("user", f"expected a username, got {user!r}")
    if not caller.is_admin:
        raise Forbidden("only an admin may create a session for another user", error="forbidden")
    row = user_by_username(user)
    if row is None:
        raise ValidationError("user", f"unknown user {user!r}")
    if not row["active"]:
        raise ValidationError("user", f"user {user!r} is disabled")
    return row["id"], row["username"]


def _usable_template(name: object) -> dict[str, Any]:
    if not isinstance(name, str) or not is_dns_label(name):
        raise ValidationError("template", f"expected a Template name (a DNS-1123 label), got {name!r}")
    template = template_store.read(environment().sessions_namespace, name)
    if template is None:
        raise ValidationError("template", f"unknown template {name!r}; GET /api/v1/templates lists the templates")
    ensure_launchable(template)
    status = template.get("status") or {}
    phase = status.get("phase")
    if phase == "Ready":
        return template
    if phase:
        raise ValidationError("template", f"template {name!r} is not ready ({phase}): {status.get('message') or ''}")
    problems = validate_template_spec(template.get("spec"))
    if problems:
        raise ValidationError("template", f"template {name!r} is invalid: {problems[0]}")
    return template


def _duration_setting(value: object, field: str) -> tuple[str, int]:
    seconds = parse_duration(value, field)
    return format_duration(seconds), seconds


def _random_suffix() -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(_SUFFIX_LENGTH))


def create_session(caller: Principal, body: Mapping[str, Any], client_ip: str = "") -> dict[str, Any]:
    owner_id, owner_name = _new_session_owner(caller, body.get("user"))
    template_name = body.get("template")
    template = _usable_template(template_name)
    if not isinstance(template_name, str):  # _usable_template refused anything else
        raise ValidationError("template", "expected a Template name")
    config = platform_settings()
    resolved = resolve_resources(body.get("resources"), (template.get("spec") or {}).get("defaultResources"),
                                 {"memory": config[RESOURCES_MEMORY], "cpu": config[RESOURCES_CPU]})
    resources = canonical_resources(resolved)  # type: ignore[arg-type]
    cpu, memory = cpu_millis(resources["limits"]["cpu"]), parse_memory(resources["limits"]["memory"])
    cpu_request = cpu_millis(resources["requests"]["cpu"])
    memory_request = parse_memory(resources["requests"]["memory"])
    idle_text, idle_seconds = _duration_setting(body.get("idleTimeout", config[SESSION_IDLE_TIMEOUT]), "idleTimeout")
    max_text, max_seconds = _duration_setting(body.get("maxSessionDuration", config[SESSION_MAX_DURATION]),
                                              "maxSessionDuration")
    persistent_home = body.get("persistentHome", True)
    if not isinstance(persistent_home, bool):
        raise ValidationError("persistentHome", f"expected true or false, got {persistent_home!r}")
    tags = parse_tags(body.get("tags"))
    home_size = parse_memory(config[STORAGE_DEFAULT_SIZE], STORAGE_DEFAULT_SIZE)
    namespace = environment().sessions_namespace
    # With HOME_STORAGE=s3 the home is a saved profile (its bytes are charged when saved), not a volume:
    # reserving a volume's size too would charge the same home twice.
    volume_home = persistent_home and environment().home_storage != "s3"

    manifest: dict[str, Any] | None = None
    for _ in range(_NAME_ATTEMPTS):
        name = session_name(owner_name, template_name, _random_suffix())
        manifest = session_manifest(name, namespace, owner_name, template_name, "running", resources,
                                    persistent_home, idle_text, max_text, tags)
        with transaction() as conn:
            check_and_reserve(conn, owner_id, Usage(1, cpu, memory, 0))
            storage = store.home_storage_request(conn, owner_id, volume_home, home_size)
            if storage:  # the first holding session with a home volume carries its size
                check_and_reserve(conn, owner_id, Usage(0, 0, 0, storage))
            inserted = store.insert(
                conn, namespace=namespace, name=name, user_id=owner_id, username=owner_name, template=template_name,
                state="running", cpu_millis=cpu, memory_bytes=memory, cpu_request_millis=cpu_request,
                memory_request_bytes=memory_request, storage_bytes=storage, persistent_home=persistent_home,
                idle_timeout_seconds=idle_seconds, max_duration_seconds=max_seconds, tags=tags)
        if inserted:
            break
    else:
        raise Conflict("could not find a free session name; try again", error="conflict")
    if manifest is None:
        raise RuntimeError("invariant broken: manifest is None")

    try:
        start = _warm_start(namespace, template, persistent_home, resources, name, manifest["spec"]["user"])
    except Exception:
        _forget(namespace, name)
        raise
    if start.pod is not None:
        manifest["metadata"].setdefault("annotations", {})[ANN_WARM_POD] = start.pod
    try:
        created = kube.create(manifest)
    except Exception as exc:
        _forget(namespace, name)
        if start.pod is not None:
            warm.release(namespace, start.pod)
        if isinstance(exc, kube.KubeError) and exc.conflict:
            raise Conflict(f"a Session named {name!r} already exists on the cluster; try again",
                           error="conflict") from None
        raise
    kind, expected = _expected_start(namespace, template, start.pod is not None)
    try:
        if start.pod is not None:
            warm.bind(namespace, start.pod, created)
        with transaction() as conn:
            if not store.update_status(conn, namespace, name, created.get("status") or {},
                                       uid=(created.get("metadata") or {}).get("uid"),
                                       generation=_generation(created)):
                raise Conflict(f"session {name!r} was deleted while it was being created", error="conflict")
            store.set_expected_start(conn, namespace, name, kind, expected)
            audit.record(conn, caller, "session.create", "session", name, client_ip,
                         {"user": owner_name, "template": template_name, "resources": resources["limits"],
                          "warm": start.pod is not None})
    except Exception:
        _undo_create(namespace, name)  # a bound warm desktop goes with its Session
        if start.pod is not None:
            warm.release(namespace, start.pod)
        raise
    api = session_to_api(created, 0)
    api["warmStart"] = start.as_api()
    api["status"]["startKind"], api["status"]["expectedReadySeconds"] = kind, expected
    return api


def _expected_start(namespace: str, template: Mapping[str, Any], claimed: bool) -> tuple[str, float | None]:
    """How this start will likely go (warm, cached, cold) and its median time so far, from the
    recorded starts (None until there are enough)."""
    name = str((template.get("metadata") or {}).get("name"))
    own = starts_store.percentiles(namespace, name)
    pulls_ahead = wanted_image(template) is not None  # pre-pulled onto every node (reconcile/pullers.py)
    kind = predicted_kind(claimed, pulls_ahead, {k: v["recent"] for k, v in own.items()})
    return kind, starts_store.expected_seconds(namespace, kind, own)


def _warm_start(namespace: str, template: Mapping[str, Any], persistent_home: bool,
                resources: Mapping[str, Any], name: str, user: str) -> warm.WarmStart:
    """A warm desktop claimed for this launch, or why none was used (sessions.warm)."""
    reason = warm.why_not(template, persistent_home)
    if reason is not None:
        return warm.WarmStart(None, reason)
    return warm.claim(namespace, template, resources, name, dns_label(user))


def _forget(namespace: str, name: str) -> None:
    """Compensation: drop the index row (the reservation) of a Session that was not created."""
    try:
        with transaction() as conn:
            store.remove(conn, namespace, name)
    except Exception:  # noqa: BLE001 - the original failure is what the caller must see
        log.exception(
            "could not drop the index row of a Session that was not created", extra={"session": name})


def _undo_create(namespace: str, name: str) -> None:
    """Compensation: the Session exists but its index row could not be completed: remove both."""
    try:
        kube.delete("Session", name, namespace)
    except Exception:  # noqa: BLE001
        log.exception(
            "could not delete a Session whose index row failed", extra={"session": name})
    _forget(namespace, name)


# -- change, delete -------------------------------------------------------------------------------

def patch_session(caller: Principal, name: str, body: Mapping[str, Any], client_ip: str = "") -> dict[str, Any]:
    """Change the desired state and/or idleTimeout, maxSessionDuration, tags.

    A terminated session cannot be changed (409): create a new one. Waking a hibernated session
    resets its activity, so the idle sweep does not put it straight back to sleep."""
    if not body:
        raise Invalid(f"give at least one of: {', '.join(sorted(PATCH_FIELDS))}", error="invalid body")
    spec: dict[str, Any] = {}
    state = str(parse_state(body["state"])) if "state" in body else None
    idle = _duration_setting(body["idleTimeout"], "idleTimeout") if "idleTimeout" in body else None
    longest = (_duration_setting(body["maxSessionDuration"], "maxSessionDuration")
               if "maxSessionDuration" in body else None)
    tags = parse_tags(body["tags"]) if "tags" in body else None
    if state is not None:
        spec["state"] = state
    if idle is not None:
        spec["idleTimeout"] = idle[0]
    if longest is not None:
        spec["maxSessionDuration"] = longest[0]
    if tags is not None:
        spec["tags"] = tags

    namespace = environment().sessions_namespace
    row = _reachable_session_row(caller, name)
    obj, previous = _patch_spec(name, namespace, spec, row["state"])
    waking = state == "running" and previous == "hibernated"
    # The cluster took the change: record it in the store. No lock is held across the Kubernetes call
    # above; should this transaction fail, the reconcile writes the index from the object it sees.
    # The row records the generation the API server answered: should a reconcile of this or a later
    # change have committed first, the older write changes nothing.
    generation = _generation(obj)
    with transaction() as conn:
        if state is not None:
            store.set_state(conn, namespace, name, state, reset_activity=waking, generation=generation)
        store.set_limits(conn, namespace, name, idle_seconds=idle[1] if idle else None,
                         max_seconds=longest[1] if longest else None, tags=tags, generation=generation)
        if state is not None and state != previous:
            audit.record(conn, caller, f"session.{state}", "session", name, client_ip,
                         {"from": previous, "to": state})
    api = _with_index_status(session_to_api(obj, int(row["active_connections"])), row)
    if waking:
        api["status"]["lastActivity"] = datetime.now(UTC)
    return api


_PATCH_ATTEMPTS = 5


def _generation(obj: Mapping[str, Any]) -> int | None:
    """A Session's metadata.generation as the API server answered it (None when absent)."""
    value = (obj.get("metadata") or {}).get("generation")
    return int(value) if isinstance(value, int) and value > 0 else None


def _patch_spec(name: str, namespace: str, spec: dict[str, Any], indexed_state: str) -> tuple[dict[str, Any], str]:
    """Merge `spec` into the Session on the cluster, guarded by the resourceVersion it was read at (a
    write in between, such as a reconcile's status, answers 409 and the change is tried again on the
    fresh object, as client-go's RetryOnConflict does). Returns (the patched Session, its state before).

    A terminated session cannot be changed except to terminate it again (409)."""
    attempt = 0
    while True:
        attempt += 1
        current = kube.get("Session", name, namespace)
        if current is None:
            raise _not_found(name)
        previous = str((current.get("spec") or {}).get("state") or "running")
        if "terminated" in (previous, indexed_state) and spec != {"state": "terminated"}:
            raise Conflict(f"session {name!r} is terminated and cannot be changed; create a new session",
                           error="session terminated")
        version = (current.get("metadata") or {}).get("resourceVersion")
        try:
            patched = kube.merge_patch("Session", name, {"metadata": {"resourceVersion": version}, "spec": spec},
                                       namespace)
        except kube.KubeError as exc:
            if exc.conflict and attempt < _PATCH_ATTEMPTS:
                continue
            raise
        return patched, previous


def delete_session(caller: Principal, name: str, client_ip: str = "") -> dict[str, Any]:
    """Delete the Session (its owned objects go with it by ownerReference) and its index row,
    which releases its quota."""
    _reachable_session_row(caller, name)
    namespace = environment().sessions_namespace
    kube.delete("Session", name, namespace)
    with transaction() as conn:
        store.remove(conn, namespace, name)
        audit.record(conn, caller, "session.delete", "session", name, client_ip)
    return {"message": f"session {name} deleted"}


# -- connections ----------------------------------------------------------------------------------

def _connection_id(value: str | None) -> str:
    if not value:
        raise Invalid("query parameter connectionId is required (from GET /sessions/{id}/connect)",
                      error="invalid connectionId")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise Invalid("connectionId must be the id returned by GET /sessions/{id}/connect",
                      error="invalid connectionId") from None


def connect(caller: Principal, name: str, client_ip: str = "", user_agent: str = "") -> dict[str, Any]:
    """Open a connection record; a hibernated session is woken (spec.state -> running). `openUrl`
    opens the desktop in a browser: a single-use ticket on the session's own host
    (streamspace.desktop.access)."""
    row = _reachable_session_row(caller, name)
    namespace = environment().sessions_namespace
    obj = kube.get("Session", name, namespace)
    if obj is None:
        raise _not_found(name)
    desired = (obj.get("spec") or {}).get("state", "running")
    if desired == "terminated" or row["state"] == "terminated":
        raise Conflict(f"session {name!r} is terminated; create a new session", error="session terminated")
    waking = desired == "hibernated"
    if waking:
        obj = kube.merge_patch("Session", name, {"spec": {"state": "running"}}, namespace)
    with transaction() as conn:
        store.set_state(conn, namespace, name, "running", reset_activity=True, generation=_generation(obj))
        connection_id = store.open_connection(conn, namespace, name, caller.user_id, caller.username,
                                              client_ip or "", (user_agent or "")[:_USER_AGENT_MAX])
        if waking:
            audit.record(conn, caller, "session.wake", "session", name, client_ip)
        ticket = issue_ticket(conn, caller, namespace, name)
    status = obj.get("status") or {}
    session_url = status.get("url") or _configured_session_url(name)
    phase = status.get("phase") or "Pending"
    if waking:
        message = "waking the hibernated session; it is ready when its phase is Running"
    elif phase == "Running":
        message = "session is ready"
    else:
        message = f"session is starting (phase {phase}); it is ready when its phase is Running"
    return {"connectionId": connection_id, "sessionUrl": status.get("url"), "openUrl": open_url(session_url, ticket),
            "state": "running", "message": message}


def _configured_session_url(name: str) -> str:
    """The URL the reconcile will publish for a session that has none yet."""
    return session_url(name, load_config())


def heartbeat(claimant: Claimant, name: str, connection_id: str | None) -> tuple[Principal, dict[str, Any]]:
    """POST /sessions/{id}/heartbeat: one statement that reads the caller's standing and updates
    the connection and, at most every ACTIVITY_RESOLUTION_SECONDS, the session's last activity.
    Returns the caller as it stands and the answer; 401/403 for a caller who may not act (nothing
    written), 404 for an unknown, expired or someone else's connection."""
    cid = _connection_id(connection_id)
    row = store.heartbeat(environment().sessions_namespace, name, cid, claimant.params)
    caller = claimant.standing(row)
    if row is None:  # standing() refused a caller without a row
        raise RuntimeError("invariant broken: row is None")
    if not row["updated"]:
        raise NotFound("unknown or expired connection; call GET /api/v1/sessions/{id}/connect again",
                       error="not found")
    return caller, {"status": "ok"}


def disconnect(caller: Principal, name: str, connection_id: str | None) -> dict[str, Any]:
    cid = _connection_id(connection_id)
    row = store.disconnect(environment().sessions_namespace, name, cid, None if caller.is_admin else caller.user_id)
    if not row["found"]:
        raise _not_found(name)
    if not row["disconnected"]:
        raise NotFound("unknown or already closed connection", error="not found")
    return {"message": "disconnected", "activeConnections": int(row["active"])}


def list_connections(caller: Principal, name: str) -> dict[str, Any]:
    """The session's live connections (heartbeat inside the window, not disconnected)."""
    _reachable_session_row(caller, name)
    rows = store.live_connections(environment().sessions_namespace, name)
    connections = [{"id": r["id"], "user": r["username"], "clientIp": r["client_ip"], "userAgent": r["user_agent"],
                    "connectedAt": r["connected_at"], "lastHeartbeat": r["last_heartbeat"]} for r in rows]
    return {"connections": connections, "total": len(connections)}


__all__ = ["connect", "create_session", "delete_session", "disconnect", "get_session", "heartbeat",
           "list_connections", "patch_session"]
