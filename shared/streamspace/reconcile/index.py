"""The reconcilers' index layer: what they read from and write to Postgres.

A session reconcile starts with ONE statement (`load_session_context`): the session's index row,
its Template as last validated, whether the Session was already deleted (tombstone), and the
configuration. The index row doubles as the record of what the last reconcile observed and wrote
(uid, observedGeneration, phase), which is what makes redelivered and reordered events cheap:
an event older than what was already reconciled, or the echo of our own status write, needs no
Kubernetes request at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamspace.db import fetch_one, transaction
from streamspace.domain.duration import DurationError, parse_duration
from streamspace.records import record
from streamspace.sessions import index_store
from streamspace.sessions import store as session_store
from streamspace.settings.effective import ReconcileConfig, config_from_values
from streamspace.templates import store as template_store


@record
class SessionContext:
    row: dict[str, Any] | None  # the sessions index row
    template: dict[str, Any] | None  # the template_index row of spec.template
    tombstoned: bool  # this Session (by uid) was deleted
    config: ReconcileConfig
    user_id: str | None = None  # the id of the user named by spec.user (None: no such user, or not loaded)

    def owner_id(self, username: str) -> str | None:
        """The session's user's id: the index row's owner (the API's sessions), else the user of that name."""
        row = self.row or {}
        if row.get("user_id") and row.get("username") == username:
            return str(row["user_id"])
        return self.user_id

    def known_generation(self, uid: str) -> int:
        """The newest generation of this Session's spec the index reflects (0: none, or another uid):
        an event carrying an older one is a copy from before a change."""
        if self.row is None or self.row.get("uid") != uid:
            return 0
        return max(int(self.row.get("observed_generation") or 0), int(self.row.get("generation") or 0))

    def reconciled(self, uid: str) -> bool:
        """Whether this incarnation of the Session was reconciled before (its objects may exist)."""
        return (self.row is not None and self.row.get("uid") == uid
                and self.row.get("observed_generation") is not None)


# Composed from the stores' constants (the session's parts from sessions.index_store, the Template's
# index row from templates.store); values are always bound parameters.
_CONTEXT_SQL = (
    "SELECT " + index_store.ROW_SUBQUERY + " AS row,"  # noqa: S608
    "       " + template_store.INDEX_ROW_SUBQUERY + " AS template,"
    "       " + index_store.TOMBSTONED_SUBQUERY + " AS tombstoned,"
    "       (SELECT id::text FROM users WHERE username = %(user)s) AS user_id,"
    "       (SELECT coalesce(jsonb_object_agg(key, value), '{}'::jsonb) FROM configuration) AS config"
)


def load_session_context(namespace: str, name: str, uid: str, template: str, user: str = "") -> SessionContext:
    found = fetch_one(_CONTEXT_SQL, {"ns": namespace, "name": name, "uid": uid, "template": template, "user": user})
    if found is None:
        raise RuntimeError("invariant broken: found is None")
    return SessionContext(row=found["row"], template=found["template"], tombstoned=bool(found["tombstoned"]),
                          config=config_from_values(found["config"] or {}), user_id=found["user_id"])


# -- the session index --------------------------------------------------------------------------------

def index_differs(row: Mapping[str, Any] | None, session: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Whether the index row must be written to match `session` with `status`."""
    if row is None:
        return True
    meta = session.get("metadata") or {}
    spec = session.get("spec") or {}
    wanted = {
        "uid": meta.get("uid"),
        "generation": meta.get("generation"),
        "state": spec.get("state") or "running",
        "template": spec.get("template"),
        "phase": status.get("phase"),
        "url": status.get("url"),
        "pod_name": status.get("podName"),
        "message": status.get("message") or None,
        "observed_generation": status.get("observedGeneration"),
        "persistent_home": spec.get("persistentHome", True) is not False,
        "tags": list(spec.get("tags") or []),
    }
    if any((row.get(key) or None) != (value or None) for key, value in wanted.items() if key != "persistent_home"):
        return True
    if row.get("persistent_home") != wanted["persistent_home"]:
        return True
    return (row.get("idle_timeout_seconds") != _seconds(spec.get("idleTimeout", "30m"))
            or row.get("max_duration_seconds") != _seconds(spec.get("maxSessionDuration", "8h")))


def _seconds(value: object) -> int | None:
    """A spec duration as the index stores it (as sessions.store.upsert_from_object does)."""
    try:
        return parse_duration(value, "duration")
    except DurationError:
        return None


def write_index(row: Mapping[str, Any] | None, session: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Make the index row match the Session (inserting it for a Session created with kubectl).

    `row` is the row as the reconcile loaded it: a row of another uid is replaced only when it is
    that one (the reconcile found this Session live on the cluster in its place). Nothing is written
    when, meanwhile, the row was taken by another Session of the name or moved on to a newer
    generation of this one's spec (sessions.store.upsert_from_object): False.
    A wake (the row says hibernated, the spec says running) restarts the activity clock, so the
    idle sweep does not put the session straight back to sleep.
    """
    meta = session.get("metadata") or {}
    spec = session.get("spec") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    waking = row is not None and row.get("state") == "hibernated" and (spec.get("state") or "running") == "running"
    obj = {**session, "status": dict(status)}
    with transaction() as conn:
        index_store.lock_name(conn, namespace, name)
        uid = meta.get("uid")
        if uid and index_store.is_tombstoned(conn, uid):
            return False  # deleted while this reconcile ran (events are delivered concurrently): no row again
        replaces = row.get("uid") if row is not None and row.get("uid") != uid else None
        if not session_store.upsert_from_object(conn, obj, replaces=replaces):
            return False
        if waking:
            session_store.set_state(conn, namespace, name, "running", reset_activity=True,
                                    generation=meta.get("generation"))
        return True


def forget_session(namespace: str, name: str, uid: str | None) -> None:
    """A Session is gone: drop its index row and remember its uid, so late events for it change
    nothing. Only ITS row: not one of a newer Session of the same name, nor the API's reservation of
    one whose uid is not recorded yet (None: the caller knows no uid and checked that no Session of
    the name exists, as resync does)."""
    with transaction() as conn:
        index_store.lock_name(conn, namespace, name)
        if uid:
            index_store.bury(conn, uid, namespace, name)
        found, row_uid = index_store.locked_uid(conn, namespace, name)
        if found and (not uid or row_uid == uid):
            session_store.remove(conn, namespace, name)
