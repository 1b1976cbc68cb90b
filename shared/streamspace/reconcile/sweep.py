"""idle-sweep: hibernate sessions idle past their timeout, terminate those past their maximum duration.

One indexed query finds (and claims, by moving the index row's state) every due session:
- running, and idle for longer than its idle timeout (`idle_timeout_seconds`; NULL: the configured
  `session.defaultIdleTimeout`; 0: never), when `session.enableAutoHibernation` is on -> hibernated;
- running or hibernated, and older than its maximum duration (`max_duration_seconds`; NULL: the
  configured `session.defaultMaxDuration`; 0: unlimited) -> terminated.
Each claimed session then gets its Session's spec.state patched (with an annotation saying why, which
session-reconcile turns into a condition), a Kubernetes Event, and an audit row. A session whose
patch fails is released again (the next tick retries it). A woken session is not re-hibernated at
once: waking resets last_activity (the sessions API on connect, session-reconcile on a state change).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from streamspace import audit, kube
from streamspace.db import transaction
from streamspace.domain.conversion import API_VERSION
from streamspace.events import BatchFailed, now_rfc3339
from streamspace.reconcile.desired import ANN_HIBERNATION_REASON, ANN_TERMINATION_REASON
from streamspace.sessions import index_store
from streamspace.sessions import store as session_store
from streamspace.settings.effective import load_config

log = logging.getLogger("streamspace.reconcile.sweep")

MAX_PER_TICK = 1000  # the rest waits for the next tick (a minute later)
COMPONENT = "streamspace-idle-sweep"

@dataclass
class SweepResult:
    hibernated: list[str] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # index rows whose Session no longer exists
    failed: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"hibernated": self.hibernated, "terminated": self.terminated, "gone": self.gone,
                "failed": self.failed}


def run_idle_sweep() -> SweepResult:
    config = load_config()
    result = SweepResult()
    with transaction() as conn:
        claimed = index_store.claim_due(conn, auto_hibernation=config.auto_hibernation,
                                        default_idle_seconds=config.default_idle_timeout_seconds,
                                        default_max_seconds=config.default_max_duration_seconds,
                                        limit=MAX_PER_TICK)
    if not claimed:
        return result
    done, undo, gone = [], [], []
    failures: list[kube.KubeError] = []
    for row in claimed:
        try:
            changed = _transition(row)
        except kube.KubeError as exc:
            undo.append(row)
            result.failed.append(row["name"])
            failures.append(exc)
            continue
        if changed:
            done.append(row)
            (result.terminated if row["target"] == "terminated" else result.hibernated).append(row["name"])
        else:
            gone.append(row)
            result.gone.append(row["name"])
    _record(done, gone, undo)
    if failures:
        raise BatchFailed(f"{len(failures)} session(s) could not be changed; released for the next tick", failures)
    return result


def _reason(row: dict[str, Any]) -> tuple[str, str]:
    if row["target"] == "terminated":
        limit = row["max_duration_seconds"]
        text = f"{limit}s" if limit else "the configured default"
        return "MaxSessionDurationExceeded", f"Session {row['name']} exceeded its maximum duration ({text}): terminated"
    return "IdleTimeout", f"Session {row['name']} was idle longer than its idle timeout: hibernated"


def _transition(row: dict[str, Any]) -> bool:
    """Patch the Session's spec.state and post a Kubernetes Event; False when the Session is gone.
    A failed patch raises its `KubeError`."""
    reason, message = _reason(row)
    annotation = ANN_TERMINATION_REASON if row["target"] == "terminated" else ANN_HIBERNATION_REASON
    try:
        obj = kube.merge_patch("Session", row["name"], {
            "metadata": {"annotations": {annotation: reason}},
            "spec": {"state": row["target"]},
        }, row["namespace"])
    except kube.KubeError as exc:
        if exc.not_found:
            return False
        log.warning("could not change a due session", extra={"session": row["name"], "status": exc.status,
                                                               "reason": exc.message})
        raise
    uid = (obj.get("metadata") or {}).get("uid") or row["uid"]
    row["generation"] = (obj.get("metadata") or {}).get("generation")  # recorded with the audit row
    now = now_rfc3339()
    event = {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{row['name']}.{uuid.uuid4().hex[:16]}", "namespace": row["namespace"],
                     "labels": {"app.kubernetes.io/managed-by": "streamspace"}},
        "involvedObject": {"apiVersion": API_VERSION, "kind": "Session", "name": row["name"],
                           "namespace": row["namespace"], **({"uid": uid} if uid else {})},
        "reason": reason, "message": message, "type": "Normal",
        "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT, "action": "Hibernate" if row["target"] == "hibernated" else "Terminate",
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    }
    try:
        kube.create(event)
    except kube.KubeError as exc:  # an Event is a courtesy: the change itself happened
        log.warning("could not post a Kubernetes Event", extra={"session": row["name"], "reason": exc.message})
    return True


def _record(done: list[dict[str, Any]], gone: list[dict[str, Any]], undo: list[dict[str, Any]]) -> None:
    """One transaction: the audit rows of every transition, the index rows of Sessions that no longer
    exist removed, and the claims of failed patches released (the next tick retries them)."""
    if not done and not undo and not gone:
        return
    with transaction() as conn:
        audit.record_many(conn, [
            ("session.terminate" if row["target"] == "terminated" else "session.hibernate", "session", row["name"],
             {"reason": _reason(row)[0], "user": row["username"], "namespace": row["namespace"],
              "lastActivity": row["last_activity"], "createdAt": row["created_at"]})
            for row in done], actor_name="system:idle-sweep")
        for row in done:  # the generation that carries the new state: an older copy never moves it back
            session_store.set_state(conn, row["namespace"], row["name"], row["target"],
                                    generation=row.get("generation"))
        for row in gone:
            session_store.remove(conn, row["namespace"], row["name"])
        for row in undo:
            index_store.unclaim(conn, row["namespace"], row["name"], row["previous"], row["target"])
