"""session-reconcile: a Session's objects and status, level-triggered from ApiServerSource events.

An event is a hint: the reconcile reads what it needs, computes the complete desired set
(`desired.desired_objects`), applies what differs with server-side apply and writes the status.
Any number of duplicated or reordered events converge on the same objects.

Requests per event (Kubernetes; Postgres is one context query plus an index write when it changed):
- the echo of our own status write (generation == observedGeneration == what the index recorded): none;
- an event older than what was already reconciled: one read of the Session, then as below;
- a Session never reconciled (just created): no read, the applies (PVC, Service, NetworkPolicy,
  Ingress, Deployment) and one status write;
- otherwise: one read (the Deployment, whose annotation records the hashes of the applied set),
  then only the objects whose hash changed, a pod list while the pod is not ready, and the status
  write when the status changed;
- a write to the Session that lost a conflict (another reconcile wrote first): one read of the
  Session, then as above once more (`_look_again`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from streamspace import kube
from streamspace.config import environment
from streamspace.domain.conversion import API_GROUP
from streamspace.domain.errors import Unavailable
from streamspace.domain.names import session_object_name
from streamspace.domain.starts import start_record
from streamspace.domain.warm import ANN_WARM_POD, POOL_PREFIX, pod_ready
from streamspace.events import MalformedEvent, ResourceEvent, now_rfc3339, parse_resource_event
from streamspace.profiles.agent_tokens import agent_token
from streamspace.reconcile import index, namespaces, warm
from streamspace.reconcile.desired import (
    ANN_HIBERNATION_REASON,
    APP_NAME,
    LABEL_SESSION,
    MANAGED_BY,
    MANAGER_NAME,
    SESSION_APP,
    UNREAD,
    DeploymentView,
    Observation,
    SessionPlan,
    delete_order,
    deployment_ready,
    desired_session,
    pod_observation,
    session_status,
    status_differs,
)
from streamspace.reconcile.resolve import resolve_for_session
from streamspace.records import record
from streamspace.sessions import starts_store

log = logging.getLogger("streamspace.reconcile.session")


class Source(StrEnum):
    """Where the copy of the Session being reconciled comes from."""

    ADDED = "add"  # an add event's copy: may be older than what the cluster holds now
    UPDATED = "update"  # an update event's copy: as above, or the echo of our own status write
    READ = "read"  # just read from the API server


class Outcome(StrEnum):
    """What a finished reconcile did (controller-runtime's empty Result: done until something changes)."""

    RECONCILED = "reconciled"  # objects, status and index are in line with the spec
    UNCHANGED = "unchanged"  # the echo of our own status write: nothing to do
    DELETING = "deleting"  # the Session is being deleted; its delete event finishes it
    DELETED = "deleted"  # the Session is gone; its index row was removed
    IGNORED = "ignored"  # the event is about nothing this reconcile manages (or no longer exists)
    SUPERSEDED = "superseded"  # the Session was replaced since this copy (or changed again after a second look)


@record
class Requeue:
    """A reconcile that did its part and must look again after `after` seconds, though nothing
    failed (controller-runtime's Result{RequeueAfter}): a claimed desktop still restoring its
    profile. The event answers 503 with Retry-After, and the broker redelivers it."""

    after: int
    reason: str


Result = Outcome | Requeue
RESTORE_POLL_SECONDS = 2  # how soon a restoring profile is asked again (a hint: the broker's backoff rules)


def settled(result: Result) -> Outcome:
    """A reconcile's result where only "done" can be answered (an event, one item of a batch): a
    Requeue becomes the retryable error the broker redelivers on."""
    if isinstance(result, Requeue):
        raise Unavailable(result.reason, retry_after=result.after)
    return result


# Answers of the API server that mean "this object will never be accepted as it is": the Session
# is reported Failed (the event is done), instead of retried forever.
REJECTED = (400, 403, 422)


def handle_session_event(event: Any) -> Outcome:
    """The session-reconcile entry point: Session events and events of the Deployments we own."""
    ev = parse_resource_event(event)
    if not ev.namespace:
        raise MalformedEvent(f"{ev.kind} {ev.name}: the event's object has no namespace")
    if ev.kind == "Session":
        if not ev.api_version.startswith(f"{API_GROUP}/"):
            raise MalformedEvent(f"a Session event must carry a stream.space object, not {ev.api_version!r}")
        if not namespaces.served(ev.namespace):  # answered with a condition saying why, nothing more
            if ev.action != "delete":
                namespaces.answer_not_served(ev.api_version, ev.kind, ev.namespace, ev.name)
            return Outcome.IGNORED
        if ev.action == "delete":
            return session_deleted(ev.namespace, ev.name, str(ev.obj["metadata"].get("uid") or ""))
        return settled(reconcile_session(ev.obj, source=Source(ev.action)))
    if ev.kind == "Deployment":
        return _deployment_event(ev) if namespaces.served(ev.namespace) else Outcome.IGNORED
    raise MalformedEvent(f"session-reconcile handles Session and Deployment events, not {ev.kind}")


def _deployment_event(ev: ResourceEvent) -> Outcome:
    """A Deployment we own changed (pod readiness, scale, deletion): reconcile its Session, re-read,
    since the event's copy of the Session is not in it and its copy of the Deployment may be stale."""
    meta = ev.obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(MANAGED_BY) != MANAGER_NAME or labels.get(APP_NAME, SESSION_APP) != SESSION_APP:
        return Outcome.IGNORED
    session_name = labels.get(LABEL_SESSION)
    if not session_name:
        session_name = next((ref.get("name") for ref in meta.get("ownerReferences") or []
                             if ref.get("kind") == "Session" and ref.get("controller")), None)
    if not isinstance(session_name, str) or not session_name:
        return Outcome.IGNORED
    if ev.namespace is None:
        raise RuntimeError("invariant broken: ev.namespace is None")
    session = kube.get("Session", session_name, ev.namespace)
    if session is None:
        return Outcome.IGNORED  # garbage collection removes what it owned; its delete event cleans the index
    return settled(reconcile_session(session, source=Source.READ))


def session_deleted(namespace: str, name: str, uid: str) -> Outcome:
    """A Session's delete event: its owned objects go by ownerReference (the home PVC stays); the
    index row goes. The event may be older than a re-create of the same name, so look first."""
    live = kube.get("Session", name, namespace)
    if live is not None and str((live.get("metadata") or {}).get("uid") or "") != uid:
        return settled(reconcile_session(live, source=Source.READ))
    index.forget_session(namespace, name, uid or None)
    return Outcome.DELETED


def _session_gone(namespace: str, name: str, uid: str) -> Outcome:
    """The Session vanished while being reconciled: remove what this reconcile may have created
    (garbage collection would, but not before the next status write fails again) and forget it.
    Only objects this Session controls, each by its own uid: a Session of the same name created
    since keeps its objects, and its index row (index.forget_session)."""
    owned = session_object_name(name)
    for kind in delete_order(environment().home_storage):
        try:
            obj = kube.get(kind, owned, namespace)
            if obj is not None and _controller_uid(obj) == uid:
                kube.delete(kind, owned, namespace, uid=str(obj["metadata"]["uid"]))
        except kube.KubeError as exc:
            log.warning("could not remove an object of a deleted session",
                        extra={"session": name, "kind": kind, "reason": exc.message})
    index.forget_session(namespace, name, uid or None)
    return Outcome.DELETED


def _controller_uid(obj: Mapping[str, Any]) -> str | None:
    """The uid of the Session that controls an owned object (None: no Session does)."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return next((str(ref.get("uid")) for ref in refs if ref.get("kind") == "Session" and ref.get("controller")), None)


def _checked(session: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    meta = session.get("metadata")
    spec = session.get("spec")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not isinstance(
            meta.get("namespace"), str):
        raise MalformedEvent("the Session has no metadata.name / metadata.namespace")
    if not isinstance(spec, dict) or not isinstance(spec.get("user"), str) or not isinstance(
            spec.get("template"), str) or not spec["user"] or not spec["template"]:
        raise MalformedEvent(f"Session {meta['name']}: spec.user and spec.template are required")
    return meta, spec


def reconcile_session(session: Mapping[str, Any], *, source: Source, deployment: DeploymentView = UNREAD,
                      force_apply: bool = False, ctx: index.SessionContext | None = None,
                      pods: list[dict[str, Any]] | None = None, conflicts_left: int = 1) -> Result:
    """Bring one Session's objects, status and index row in line with its spec.

    The shape of controller-runtime's Reconcile, level-triggered: observe (the copy to reconcile, the
    index, the Deployment), decide the desired state with a pure function (`desired.desired_session`),
    apply it (server-side apply, deletes), write the status (conditions and observedGeneration) and
    the index, and say what is next: an Outcome (done), a Requeue (look again after N seconds), or a
    raised retryable domain error (retry, with the broker's backoff).

    `source`: where `session` comes from (an event's copy, or just read from the API server).
    `deployment`: the Deployment when the caller already has it (resync), else it is read if needed.
    `force_apply`: apply the whole set even if the Deployment's record says it is in place (resync
    found an owned object missing). `ctx`, `pods`: already loaded by the caller (resync).
    `conflicts_left`: how often a write to the Session that loses a conflict is followed by a
    reconcile of the Session as it is now (`_look_again`).
    """
    result = _reconcile(session, source, deployment, force_apply, ctx, pods)
    if result is Outcome.SUPERSEDED and conflicts_left > 0:
        return _look_again(session, conflicts_left - 1)
    return result


def _look_again(session: Mapping[str, Any], conflicts_left: int) -> Result:
    """A write to the Session lost a conflict: another write came in between, most often another
    reconcile's status. That write's echo will likely be answered from the index as our own
    (`_observe`: nothing else can have changed), so what this reconcile saw and the other did not (a
    pod that became ready meanwhile) would show nowhere until the periodic resync. Reconcile the
    Session as the cluster holds it now instead, as controller-runtime requeues on a conflict (one
    read of the Session, then what any reconcile reads); a Session replaced meanwhile is left to its
    own events. Only ever reached on a conflict: no request on any other path."""
    meta = session["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], str(meta.get("uid") or "")
    fresh = kube.get("Session", name, namespace)
    if fresh is None:
        return _session_gone(namespace, name, uid)
    if str((fresh.get("metadata") or {}).get("uid") or "") != uid:
        return Outcome.SUPERSEDED
    return reconcile_session(fresh, source=Source.READ, conflicts_left=conflicts_left)


def _reconcile(session: Mapping[str, Any], source: Source, deployment: DeploymentView, force_apply: bool,
               ctx: index.SessionContext | None, pods: list[dict[str, Any]] | None) -> Result:
    seen = _observe(session, source, deployment, force_apply, ctx)
    if not isinstance(seen, _Seen):
        return seen
    plan, claimed = _plan(seen, force_apply)
    applied = _apply_plan(seen, plan)
    if isinstance(applied, Outcome):
        return applied
    observed = applied.rejected or plan.settled or _observe_desktop(seen, plan, claimed, applied.deployment,
                                                                     applied.just_applied, pods)
    return _report(seen, observed, applied.version)


@record
class _Seen:
    """What a reconcile observed before deciding anything."""

    session: Mapping[str, Any]  # the copy reconciled (the event's, or the cluster's when that one was stale)
    source: Source
    ctx: index.SessionContext
    deployment: DeploymentView


@record
class _Claimed:
    """The warm desktop the Session runs in, and its profile's restore (None: no restore asked)."""

    pod: dict[str, Any]
    restore: warm.Restore | None


@record
class _Applied:
    deployment: DeploymentView  # as the apply answered it, when the Deployment was applied
    just_applied: bool
    version: str | None  # the Session's resourceVersion every write to it is made on
    rejected: Observation | None = None  # the API server refused an object for good


def _observe(session: Mapping[str, Any], source: Source, deployment: DeploymentView, force_apply: bool,
             ctx: index.SessionContext | None) -> _Seen | Result:
    """The copy of the Session to reconcile, its index context and, when its objects may exist, its
    Deployment; a Result when that settles the event (being deleted, gone, stale, the echo of our
    own status write)."""
    meta, spec = _checked(session)
    namespace, name = meta["namespace"], meta["name"]
    uid = str(meta.get("uid") or "")
    if meta.get("deletionTimestamp"):
        return Outcome.DELETING
    if ctx is None:
        ctx = index.load_session_context(namespace, name, uid, spec["template"], spec["user"])
    if ctx.tombstoned:
        return Outcome.DELETED
    # Even a copy just read may be older than what the index knows (read before the API changed or
    # replaced the Session): nothing is applied from it then.
    current = _current_copy(session, ctx, force_apply)
    if not isinstance(current, Mapping):
        return current
    if current is not session:
        session, source = current, Source.READ
        meta, spec = _checked(session)
    row = ctx.row or {}
    generation = int(meta.get("generation") or 0)
    status = session.get("status") or {}
    if (source is Source.UPDATED and not force_apply and row.get("uid") == uid
            and row.get("observed_generation") == generation and status.get("observedGeneration") == generation
            and row.get("phase") == status.get("phase")):
        return Outcome.UNCHANGED  # the echo of our own status write: nothing else can have changed
    if deployment is UNREAD and ctx.reconciled(uid):
        deployment = kube.get("Deployment", session_object_name(name), namespace)
    return _Seen(session, source, ctx, deployment)


def _plan(seen: _Seen, force_apply: bool) -> tuple[SessionPlan, _Claimed | None]:
    """The desired state (pure: `desired_session`), and the claimed warm desktop it was decided
    with: a running Session keeps serving from it once its agent took the profile's token."""
    session, ctx = seen.session, seen.ctx
    meta, spec = session["metadata"], session["spec"]
    namespace, name = meta["namespace"], meta["name"]
    state = spec.get("state") or "running"
    template, problem = None, None
    if state != "terminated":
        resolution = resolve_for_session(namespace, spec["template"], ctx.template)
        template = resolution.spec
        problem = None if resolution.problem is None else (resolution.problem, resolution.message)
    profile_token = None
    if ctx.config.home_storage == "s3" and spec.get("persistentHome", True) is not False:
        owner = ctx.owner_id(spec["user"])
        profile_token = agent_token(namespace, name, owner) if owner is not None else None

    def decide(warm: bool) -> SessionPlan:
        return desired_session(session, template, ctx.config, deployment=seen.deployment, force_apply=force_apply,
                               template_problem=problem, profile_token=profile_token, warm=warm)

    plan = decide(False)
    if not plan.claimed_desktop:
        return plan, None
    pod = _warm_pod(session, state)  # no request for a Session that claimed none; ended unless it runs
    if pod is None or plan.settled is not None:
        return plan, None
    restore = None
    if profile_token is not None and pod_ready(pod):
        restore = _restore_profile(session, pod, profile_token)
        if restore is None:  # its agent did not take the claim: the session's own pod takes over
            return plan, None
    return decide(True), _Claimed(pod, restore)


def _apply_plan(seen: _Seen, plan: SessionPlan) -> _Applied | Outcome:
    """Make the cluster what the plan says: deletes, server-side applies (stopping at an object the
    API server refuses for good), and a woken Session's hibernation reason removed."""
    session = seen.session
    meta, spec = session["metadata"], session["spec"]
    namespace, name = meta["namespace"], meta["name"]
    owned = session_object_name(name)
    for kind in plan.delete:
        kube.delete(kind, owned, namespace)
    deployment, just_applied, rejected = seen.deployment, False, None
    for obj in plan.apply:
        try:
            result = _apply(obj)
        except kube.KubeError as exc:
            if exc.status not in REJECTED:
                raise
            rejected = Observation("Failed", "ObjectRejected",
                                   f"the API server refused {obj['kind']} {obj['metadata']['name']}: {exc.message}")
            break
        if obj["kind"] == "Deployment":
            deployment, just_applied = result, True
    # Every write to the Session is made on exactly the version reconciled: a change since (or another
    # Session of the same name, which never has this resourceVersion) answers 409 and is not touched.
    version = meta.get("resourceVersion")
    if (spec.get("state") or "running") == "running" and (meta.get("annotations") or {}).get(ANN_HIBERNATION_REASON):
        # Woken: the idle sweep's reason belongs to the hibernation that just ended.
        try:
            woken = kube.merge_patch("Session", name, {"metadata": {
                "resourceVersion": version, "annotations": {ANN_HIBERNATION_REASON: None}}}, namespace)
        except kube.KubeError as exc:
            if exc.not_found:
                return _session_gone(namespace, name, str(meta.get("uid") or ""))
            if exc.conflict:
                return Outcome.SUPERSEDED
            raise
        version = (woken.get("metadata") or {}).get("resourceVersion") or version
    return _Applied(deployment, just_applied, version, rejected)


def _report(seen: _Seen, observed: Observation, version: str | None) -> Result:
    """Write the status for what was observed (when it changed), the start record of a session that
    just became Running, and the index row; say what is next."""
    session, ctx = seen.session, seen.ctx
    meta = session["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    uid = str(meta.get("uid") or "")
    new_status = session_status(session, observed, ctx.config, now_rfc3339())
    already_written = seen.source is not Source.READ and _index_records(ctx.row, uid, new_status)
    if status_differs(session.get("status") or {}, new_status) and not already_written:
        try:
            if not kube.apply_status("Session", name, namespace, new_status, resource_version=version):
                return _session_gone(namespace, name, uid)
        except kube.KubeError as exc:
            if not exc.conflict:
                raise
            return Outcome.SUPERSEDED
    before = (ctx.row or {}).get("phase") if (ctx.row or {}).get("uid") == uid else None
    if new_status.get("phase") == "Running" and before != "Running":
        _record_start(session, new_status.get("podName"), waking=before == "Hibernated")
    if index.index_differs(ctx.row, session, new_status):
        index.write_index(ctx.row, session, new_status)
    if observed.reason == PROFILE_RESTORING:  # asked again until the agent is done
        return Requeue(RESTORE_POLL_SECONDS, f"session {name}: {observed.message}")
    return Outcome.RECONCILED


def _current_copy(session: Mapping[str, Any], ctx: index.SessionContext,
                  force_apply: bool) -> Mapping[str, Any] | Result:
    """The copy of the Session to reconcile when an event brought it: the event's own, or the one on
    the cluster now when the event may be stale (the index knows a newer incarnation or generation).
    A Result when the question is settled on the way (the Session is gone, or another one of the
    same name was reconciled instead)."""
    meta, spec = session["metadata"], session["spec"]
    namespace, name, uid = meta["namespace"], meta["name"], str(meta.get("uid") or "")
    row = ctx.row
    if row is None:
        return session
    if row.get("uid") != uid:
        # The index knows another Session of this name (or the API's reservation of one whose uid is
        # not recorded yet): this copy may be of an older one.
        fresh = kube.get("Session", name, namespace)
        if fresh is None:
            return Outcome.IGNORED
        if (fresh.get("metadata") or {}).get("uid") != uid:
            return reconcile_session(fresh, source=Source.READ, force_apply=force_apply)
        return session
    if ctx.known_generation(uid) > int(meta.get("generation") or 0):
        # Older than what the index already reflects (reordered delivery, or a change the API made and
        # recorded before its event arrived, such as terminate): reconcile what is there now.
        fresh = kube.get("Session", name, namespace)
        if fresh is None:
            return _session_gone(namespace, name, uid)
        if (fresh.get("metadata") or {}).get("uid") != uid or (fresh.get("spec") or {}).get("template") \
                != spec["template"]:
            return reconcile_session(fresh, source=Source.READ, force_apply=force_apply)
        return fresh
    return session


def _record_start(session: Mapping[str, Any], pod_name: object, *, waking: bool) -> None:
    """Keep the phases of the start that just made the session Running (its pod's conditions and
    Events); a start that cannot be read is skipped, never a reason to fail the reconcile."""
    from datetime import UTC, datetime

    meta, spec = session["metadata"], session["spec"]
    namespace = meta["namespace"]
    if not isinstance(pod_name, str) or not pod_name:
        return
    try:
        pod = kube.get("Pod", pod_name, namespace)
        if pod is None:
            return
        claimed = (meta.get("annotations") or {}).get(ANN_WARM_POD) == pod_name
        events = [] if claimed else kube.list_objects("Event", namespace,
                                                      field_selector=f"involvedObject.name={pod_name}")
        record = start_record(session, pod, events, warm=claimed, waking=waking, observed_at=datetime.now(UTC))
    except kube.KubeError as exc:
        log.warning("could not read the start of a session", extra={"session": meta["name"], "reason": exc.message})
        return
    if record is not None:
        starts_store.record(namespace, meta["name"], pod_name, spec["template"], record)


def _index_records(row: Mapping[str, Any] | None, uid: str, status: Mapping[str, Any]) -> bool:
    """Whether the index row says this exact status was already written (to this incarnation):
    then an event carrying an older copy of the status needs no write."""
    if row is None or row.get("uid") != uid:
        return False
    return (row.get("observed_generation") == status.get("observedGeneration")
            and row.get("phase") == status.get("phase") and (row.get("url") or None) == (status.get("url") or None)
            and (row.get("pod_name") or None) == (status.get("podName") or None)
            and (row.get("message") or None) == (status.get("message") or None))


def _observe_desktop(seen: _Seen, plan: SessionPlan, claimed: _Claimed | None, deployment: DeploymentView,
                     just_applied: bool, pods: list[dict[str, Any]] | None) -> Observation:
    """What a running Session's desktop shows once the plan is applied: the claimed warm desktop (and
    its profile's restore), else the Deployment's readiness, else why its pod is not ready yet."""
    session, ctx = seen.session, seen.ctx
    meta = session["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    if claimed is not None:
        desktop, restore = str(claimed.pod["metadata"]["name"]), claimed.restore
        if restore is not None and not restore.done:
            # Ready only once the user's files are in: the portal waits on this phase (and the condition).
            return Observation("Pending", PROFILE_RESTORING, restore.message, desktop,
                               profile_restore=("Unknown", "Restoring", restore.message))
        if restore is not None and not restore.ok:
            return Observation("Running", "PodReady", restore.message, desktop,
                               profile_restore=("False", "RestoreFailed", restore.message))
        if restore is not None:
            return Observation("Running", "PodReady", "", desktop,
                               profile_restore=("True", "Restored", restore.message or "the saved home was restored"))
        if pod_ready(claimed.pod):
            return Observation("Running", "PodReady", "", desktop)
        return Observation("Pending", "PodNotReady", "waiting for the claimed warm desktop to become ready", desktop)
    current = session.get("status") or {}
    if deployment_ready(deployment if isinstance(deployment, Mapping) else None):
        pod_name = current.get("podName") if current.get("phase") == "Running" else None
        row = ctx.row
        if pod_name is None and row is not None and row.get("uid") == meta.get("uid") and row.get("phase") == "Running":
            pod_name = row.get("pod_name")  # what the last reconcile saw (the event's status may be older)
        if pod_name is None and not just_applied:
            pod_name, _, _ = pod_observation(pods if pods is not None else _pods(namespace, name))
        return Observation("Running", "PodReady", "", pod_name)
    if just_applied:
        # A Deployment applied just now has no pod to look at yet; its status events follow.
        return Observation("Pending", "PodStarting", "waiting for the session's pod to start")
    pod_name, pull_failure, waiting = pod_observation(pods if pods is not None else _pods(namespace, name))
    if pull_failure is not None:
        return Observation("Failed", "ImagePullFailed", pull_failure, pod_name)
    unbound = _claim_not_bound(namespace, plan.home_claim) if plan.home_claim is not None else None
    if unbound is not None:
        return Observation("Pending", "HomeVolumePending", unbound, pod_name)
    text = f"waiting for the session's pod to become ready ({waiting})" if waiting else \
        "waiting for the session's pod to become ready"
    return Observation("Pending", "PodNotReady", text, pod_name)


PROFILE_RESTORING = "ProfileRestoring"  # a Pending reason: the claimed desktop's agent is restoring the profile


def _restore_profile(session: Mapping[str, Any], pod: Mapping[str, Any], token: str) -> warm.Restore | None:
    """The profile's restore into the claimed warm desktop: as the status already reports it, else as
    its agent answers when handed the session's token (reconcile/warm.py hand_over). None when the
    agent did not take it: the desktop is deleted, and the Session's own Deployment starts a desktop
    whose init container restores the profile (a cold start, never a desktop without the user's files)."""
    desktop = str(pod["metadata"]["name"])
    recorded = warm.recorded_restore(session, desktop)
    if recorded is not None:
        return recorded
    try:
        return warm.hand_over(pod, token)
    except warm.HandOverFailed as exc:
        log.warning("a claimed warm desktop's profile agent did not take the claim; starting the session's own "
                    "desktop", extra={"session": session["metadata"]["name"], "pod": desktop, "reason": str(exc)})
        kube.delete("Pod", desktop, session["metadata"]["namespace"])
        return None


def _warm_pod(session: Mapping[str, Any], state: str) -> dict[str, Any] | None:
    """The warm desktop this Session claimed, while it runs in it: alive, labelled for this Session
    and not owned by anything else. Hibernating ends it (the Session's Deployment starts the next
    desktop on wake). No request for a Session that claimed none."""
    meta = session["metadata"]
    pod_name = (meta.get("annotations") or {}).get(ANN_WARM_POD)
    if not isinstance(pod_name, str) or not pod_name:
        return None
    pod = kube.get("Pod", pod_name, meta["namespace"])
    if pod is None or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return None
    pod_meta = pod.get("metadata") or {}
    if (pod_meta.get("labels") or {}).get(LABEL_SESSION) != meta["name"] or not all(
            _claimed_by(ref, str(meta.get("uid"))) for ref in pod_meta.get("ownerReferences") or []):
        return None  # not ours: never adopt a pod by an annotation alone
    if state != "running":
        kube.delete("Pod", pod_name, meta["namespace"])
        return None
    return pod


def _claimed_by(owner: Mapping[str, Any], session_uid: str) -> bool:
    """Whether an ownerReference of a claimed desktop is one it may still carry: this Session's, or
    its pool's controller (a Deployment warm-<template>, or that Deployment's ReplicaSet) that has
    not released it yet. The launch binds it to the Session right after creating the Session, and
    the Session's first event may come before that."""
    if str(owner.get("uid")) == session_uid:
        return True
    return owner.get("kind") in ("Deployment", "ReplicaSet") and str(owner.get("name") or "").startswith(POOL_PREFIX)


def _claim_not_bound(namespace: str, claim: str) -> str | None:
    """Why the home claim is still Pending, in the words of its newest Warning event (the provisioner's
    refusal of the access mode, a storage class that does not exist), or None while nothing is wrong (bound,
    or waiting for its first consumer). None too when we may not read claims or events."""
    try:
        found = kube.get("PersistentVolumeClaim", claim, namespace)
        if found is None or (found.get("status") or {}).get("phase") != "Pending":
            return None
        events = kube.request("GET", kube.KINDS["Event"].path(namespace), query={
            "fieldSelector": f"involvedObject.kind=PersistentVolumeClaim,involvedObject.name={claim}"}).get("items")
    except kube.KubeError as exc:
        if exc.status != 403:
            raise
        log.warning("may not read claims or events: grant the reconciler get on persistentvolumeclaims and list "
                    "on events", extra={"claim": claim})
        return None
    uid = (found.get("metadata") or {}).get("uid")
    warnings = [e for e in events or [] if e.get("type") == "Warning" and (e.get("involvedObject") or {}).get(
        "uid") == uid]
    if not warnings:
        return None
    newest = max(warnings, key=lambda e: (str(e.get("lastTimestamp") or e.get("eventTime") or ""),
                                          int((e.get("metadata") or {}).get("resourceVersion") or 0)))
    class_name = (found.get("spec") or {}).get("storageClassName") or "(none)"
    return (f"the home volume claim {claim} (storage class {class_name}, access mode "
            f"{', '.join((found.get('spec') or {}).get('accessModes') or [])}) cannot be bound: "
            f"{newest.get('message') or newest.get('reason')}")


def _pods(namespace: str, name: str) -> list[dict[str, Any]]:
    """The session's pods; none when we may not list pods (the status then lacks podName and image
    pull failures stay Pending, which is better than retrying the event forever)."""
    try:
        return kube.list_objects("Pod", namespace, label_selector=f"{LABEL_SESSION}={name}")
    except kube.KubeError as exc:
        if exc.status != 403:
            raise
        log.warning("may not list pods: grant the reconciler get/list on pods", extra={"session": name})
        return []


def _apply(obj: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply; the home claim is only ever created (its size and class are immutable
    once bound, and it is shared by the user's sessions)."""
    if obj["kind"] == "PersistentVolumeClaim":
        try:
            return kube.create(obj)
        except kube.KubeError as exc:
            if exc.status == 409:  # AlreadyExists
                return obj
            raise
    return kube.apply(obj)
