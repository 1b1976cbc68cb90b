"""template-reconcile: validate Templates, write their status, and fail or recover their Sessions.

A Template's validity is decided by `streamspace.domain.templates.validate_template_spec` (the same
reader the REST API, catalog sync and the converter use). The result is written to the Template's
status (server-side apply on /status) and to `template_index`, where session-reconcile resolves
Templates without reading the cluster. When a Template's spec or validity changes, or it
disappears, the Sessions using it are reconciled: they go Failed with TemplateInvalid /
TemplateMissing, and recover when it is fixed. That fan-out stays due on the index row until it has
reached every Session, so a retried event (or the Template's next one) completes it.

Image pre-pull (reconcile/pullers.py): whenever a Template's spec changes or it goes, the image-puller
DaemonSets of the sessions namespace are made to match what all Templates want (one per image; one
no Template wants any more is deleted). The events of those DaemonSets come here too: each updates
`status.prePull` (how many nodes have the image) and the ImagePrePulled condition of the Templates
of that image, and re-creates a puller someone deleted. The echo of a Template's own status write
counts again too: that status was counted before the write, and the puller's events of the meantime
skipped the Template (not reconciled yet) or lost to the write.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from streamspace import kube
from streamspace.config import environment
from streamspace.domain.conversion import API_GROUP, LEGACY_API_VERSION
from streamspace.domain.errors import DomainError, ValidationError
from streamspace.domain.templates import parse_template_spec, review_template_spec
from streamspace.domain.warm import pool_name, size_at
from streamspace.events import PING_TYPE, BatchFailed, MalformedEvent, now_rfc3339, parse_resource_event
from streamspace.reconcile import legacy, namespaces, pullers, warm
from streamspace.reconcile.desired import APP_NAME, LABEL_TEMPLATE
from streamspace.reconcile.ping import require_ping
from streamspace.reconcile.resolve import MESSAGE_LIMIT, validate
from streamspace.reconcile.session import Source, reconcile_session, settled
from streamspace.records import record
from streamspace.sessions import index_store
from streamspace.templates import store as template_store

log = logging.getLogger("streamspace.reconcile.template")


def _parsed(spec: object) -> Any:
    return parse_template_spec(spec)


def spec_warnings(spec: object) -> str:
    """What was accepted but changed or ignored (unknown capabilities kept as tags), one line."""
    return "; ".join(review_template_spec(spec).warnings)[:MESSAGE_LIMIT]


def _condition(old: Mapping[str, Mapping[str, Any]], now: str, type_: str, value: str, reason: str,
               message: str) -> dict[str, Any]:
    previous = old.get(type_)
    since = str(previous["lastTransitionTime"]) if previous and previous.get("status") == value \
        and previous.get("lastTransitionTime") else now
    return {"type": type_, "status": value, "lastTransitionTime": since, "reason": reason, "message": message}


def template_status(obj: Mapping[str, Any], phase: str, message: str, now: str, warnings: str = "",
                    warm_pool: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`warm_pool`: the WarmPool condition (streamspace.reconcile.warm), when the Template has or had a pool."""
    meta = obj.get("metadata") or {}
    old = {str(c.get("type")): c for c in (obj.get("status") or {}).get("conditions") or []
           if isinstance(c, Mapping)}
    ready = phase == "Ready"
    extra = [dict(warm_pool)] if warm_pool is not None else []
    return {
        "phase": phase,
        "message": message,
        "observedGeneration": int(meta.get("generation") or 0),
        "conditions": [
            _condition(old, now, "Ready", "True" if ready else "False", "SpecValid" if ready else "SpecInvalid",
                       "the template can be used" if ready else message),
            # Abnormal-true, like the conditions that report problems without blocking use.
            _condition(old, now, "SpecWarnings", "True" if warnings else "False",
                       "UnknownCapabilities" if warnings else "NoWarnings", warnings or "nothing was ignored"),
            *extra,
        ],
    }


def with_prepull(status: Mapping[str, Any], obj: Mapping[str, Any], daemonset: Mapping[str, Any] | None,
                 now: str) -> dict[str, Any]:
    """`status` with the Template's pre-pull part: `prePull` and the ImagePrePulled condition when it
    wants its image on every node, neither when it does not (server-side apply then removes them)."""
    out = {k: v for k, v in status.items() if k != "prePull"}
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != pullers.CONDITION]
    image = pullers.wanted_image(obj)
    if image is not None:
        prepull = pullers.prepull_status(image, daemonset)
        value, reason, message = pullers.prepull_condition(prepull, daemonset)
        old = {str(c.get("type")): c for c in (obj.get("status") or {}).get("conditions") or []
               if isinstance(c, Mapping)}
        condition = _condition(old, now, pullers.CONDITION, value, reason, message)
        condition["observedGeneration"] = int((obj.get("metadata") or {}).get("generation") or 0)
        conditions.append(condition)
        out["prePull"] = prepull
    out["conditions"] = conditions
    return out


def _status_differs(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    current = current or {}
    return any((current.get(k) or None) != (desired.get(k) or None)
               for k in ("phase", "message", "observedGeneration", "conditions", "prePull"))


@record
class Listed:
    """A namespace's Templates as just listed, and its image pullers as `sync_pullers` made them match
    those very copies (image -> live DaemonSet)."""

    templates: Sequence[Mapping[str, Any]]
    pullers: Mapping[str, Mapping[str, Any]]


def sync_pullers(namespace: str, templates: list[dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Make the image-puller DaemonSets match what the Templates want (server-side apply of each
    wanted one that differs, delete of each no Template wants); returns image -> its live DaemonSet."""
    if templates is None:
        templates = template_store.list_objects(namespace)
    wanted = pullers.wanted_images(templates)
    live = {str(o["metadata"]["name"]): o
            for o in kube.list_objects("DaemonSet", namespace, label_selector=f"{APP_NAME}={pullers.PULLER_APP}")}
    out: dict[str, dict[str, Any]] = {}
    for image in wanted:
        desired = pullers.puller_daemonset(image, namespace)
        current = live.get(desired["metadata"]["name"])
        applied = ((current or {}).get("metadata") or {}).get("annotations") or {}
        if current is None or applied.get(pullers.ANN_HASH) != desired["metadata"]["annotations"][pullers.ANN_HASH]:
            current = kube.apply(desired)
        out[image] = current
    keep = {pullers.puller_name(image) for image in wanted}
    for name, obj in live.items():
        if name not in keep and pullers.is_puller(obj):
            kube.delete("DaemonSet", name, namespace)
            log.info("image puller removed: no template wants its image",
                     extra={"daemonset": name, "image": pullers.puller_image(obj)})
    return out


def daemonset_changed(action: str, obj: Mapping[str, Any], namespace: str) -> str:
    """An image puller changed (its status counts nodes) or went: re-make what is wanted and refresh the
    pre-pull status of the Templates of its image."""
    if namespace != environment().sessions_namespace or not pullers.is_puller(obj):
        return "ignored"  # not ours: the source's label selector should not have sent it
    templates = template_store.list_objects(namespace)
    live = sync_pullers(namespace, templates)
    image = pullers.puller_image(obj)
    refreshed = refresh_prepull_status(namespace, [t for t in templates
                                                   if image is not None and pullers.wanted_image(t) == image], live)
    return "reconciled" if refreshed or action == "delete" else "unchanged"


def refresh_prepull_status(namespace: str, templates: list[dict[str, Any]],
                           live: Mapping[str, Mapping[str, Any]]) -> int:
    """Write the pre-pull part of these Templates' status where it differs from their pullers' counts
    (`live`: image -> DaemonSet); returns how many were written."""
    written = 0
    for template in templates:
        meta = template.get("metadata") or {}
        status = template.get("status") or {}
        if status.get("observedGeneration") != meta.get("generation"):
            continue  # not reconciled yet: its own event writes the whole status
        desired = with_prepull(status, template, live.get(pullers.wanted_image(template) or ""), now_rfc3339())
        if _status_differs(status, desired):
            try:  # on exactly the version read: a newer one has its own event
                template_store.apply_status(namespace, str(meta.get("name")), desired,
                                            resource_version=meta.get("resourceVersion"))
            except kube.KubeError as exc:
                if not exc.conflict:
                    raise
                continue
            written += 1
    return written


def recount_prepull(namespace: str, template: Mapping[str, Any]) -> int:
    """Bring this copy of a reconciled Template's pre-pull counts up to its puller now (one read of
    the DaemonSet, a status write only where they differ); returns how many were written (0 or 1)."""
    image = pullers.wanted_image(template)
    if image is None:
        return 0
    daemonset = kube.get("DaemonSet", pullers.puller_name(image), namespace)
    return refresh_prepull_status(namespace, [dict(template)], {image: daemonset} if daemonset else {})


def handle_template_event(event: Any) -> str:
    if event["type"] == PING_TYPE:
        require_ping(event, SCHEDULE_TASK)
        return f"resized {len(schedule_tick(environment().sessions_namespace))} pool(s)"
    ev = parse_resource_event(event)
    ours = ev.kind == "Template" and ev.api_version.startswith(f"{API_GROUP}/")
    legacy_object = ev.api_version == LEGACY_API_VERSION and ev.kind in legacy.LEGACY_KINDS
    if ev.namespace and (ours or legacy_object) and not namespaces.served(ev.namespace):
        return "ignored" if ev.action == "delete" else \
            namespaces.answer_not_served(ev.api_version, ev.kind, ev.namespace, ev.name)
    if ev.api_version == LEGACY_API_VERSION:
        return legacy.handle_legacy_event(ev)
    if ev.kind == "DaemonSet" and ev.api_version == "apps/v1" and ev.namespace:
        return daemonset_changed(ev.action, ev.obj, ev.namespace)
    if ev.kind != "Template":
        raise MalformedEvent(f"template-reconcile handles Template events, not {ev.kind}")
    if not ev.api_version.startswith(f"{API_GROUP}/") or not ev.namespace:
        raise MalformedEvent("a Template event must carry a namespaced stream.space object")
    if ev.action == "delete":
        return template_deleted(ev.namespace, ev.name, str(ev.obj["metadata"].get("uid") or ""))
    return reconcile_template(ev.obj, action=ev.action)


SCHEDULE_TASK = "warm-schedule"  # the PingSource that ticks every minute for warm pools' schedules


def schedule_tick(namespace: str, now: str | None = None) -> list[str]:
    """The warm-schedule tick (every minute): reconcile each Template whose pool schedule asks, at
    `now`, for another size than its pool Deployment keeps, so a window opens and closes within a
    minute instead of at resync's five-minute tick. One list of Templates and one read of each
    scheduled pool's Deployment (the verbs warm pools have already); nothing more while in step.
    Returns the Templates reconciled."""
    from datetime import datetime

    now = now or now_rfc3339()
    instant = datetime.fromisoformat(now.replace("Z", "+00:00"))
    scheduled = [t for t in template_store.list_objects(namespace)
                 if ((t.get("spec") or {}).get("warmPool") or {}).get("schedule")
                 and not (t.get("metadata") or {}).get("deletionTimestamp")]
    if not scheduled:
        return []
    done = []
    for template in scheduled:
        name = str(template["metadata"]["name"])
        try:
            pool = _parsed(template.get("spec")).warm_pool
        except ValidationError:
            continue  # its own events report it invalid; it keeps no pool
        deployment = kube.get("Deployment", pool_name(name), namespace)
        if deployment is None or int((deployment.get("spec") or {}).get("replicas") or 0) == size_at(pool, instant):
            continue  # in step, or kept no pool (over budget, invalid env): its events and resync decide
        reconcile_template(template, action="read", cascade=False, now=now)
        done.append(name)
    return done


def template_deleted(namespace: str, name: str, uid: str) -> str:
    live = template_store.read(namespace, name)  # a delete may be older than a re-create
    if live is not None and not (live.get("metadata") or {}).get("deletionTimestamp"):
        return reconcile_template(live, action="read")
    template_store.delete_index(namespace, name, uid or None)
    sync_pullers(namespace)  # its image's puller goes unless another Template wants the image
    reconcile_sessions_of(namespace, name)
    return "deleted"


def reconcile_template(obj: Mapping[str, Any], *, action: str, cascade: bool = True, now: str | None = None,
                       listed: Listed | None = None) -> str:
    """Validate one Template, write its status and index row; reconcile its Sessions when what they
    see of it changed. Returns what was done ("unchanged", "reconciled", "deleted", "superseded": the
    Template changed or was replaced since this copy, and that change's own event reconciles it).
    `now` (RFC 3339, default the clock): the instant its warm pool's schedule is evaluated at.
    `listed`: what the caller has just listed, `obj` among it (resync): it stands in for the lists of
    Templates and image pullers this would otherwise make for `obj` (one Template's event reads them
    itself; a resync of N Templates must not list them N times)."""
    meta = obj.get("metadata") or {}
    if not isinstance(meta.get("name"), str) or not isinstance(meta.get("namespace"), str):
        raise MalformedEvent("the Template has no metadata.name / metadata.namespace")
    namespace, name = meta["namespace"], meta["name"]
    uid = str(meta.get("uid") or "")
    generation = int(meta.get("generation") or 0)
    row = template_store.index_row(namespace, name)
    if row is not None and ((row.get("uid") and row.get("uid") != uid)
                            or (row.get("uid") == uid and int(row.get("generation") or 0) > generation)):
        # Older than what we validated (a late event, a resync's list taken before a change), or maybe
        # of an earlier Template of this name: validate what is there now.
        fresh = template_store.read(namespace, name)
        if fresh is None:
            return template_deleted(namespace, name, uid)
        obj, action = fresh, "read"
        listed = None  # not the copy listed: what it wants is read anew
        meta = obj.get("metadata") or {}
        uid, generation = str(meta.get("uid") or ""), int(meta.get("generation") or 0)
    status = obj.get("status") or {}
    # The fan-out of what the index holds did not reach every Session yet (it failed part-way): this
    # event, whatever copy it carries, finishes it.
    due = bool(row is not None and row.get("sessions_due"))
    if (action == "update" and row is not None and row.get("uid") == uid and not due
            and int(row.get("generation") or -1) == generation == status.get("observedGeneration")
            and row.get("phase") == status.get("phase")):
        # The echo of our own status write. Its pre-pull counts were read before that write, and the
        # puller's events that came meanwhile skipped this Template (not reconciled yet) or lost to
        # the write (conflict): count again, or nothing would until the resync.
        return "reconciled" if recount_prepull(namespace, obj) else "unchanged"

    spec = obj.get("spec")
    phase, message = validate(spec)
    now = now or now_rfc3339()
    pool = warm.reconcile_pool(obj, _parsed(spec) if phase == "Ready" else None, now,
                               templates=listed.templates if listed is not None else None)
    desired = template_status(obj, phase, message, now, spec_warnings(spec) if phase == "Ready" else "", pool)
    image = pullers.wanted_image(obj)
    if listed is not None:  # the pullers were made to match this very copy (among all listed) just now
        daemonset = listed.pullers.get(image or "")
    elif row is None or row.get("uid") != uid or row.get("spec") != spec:
        daemonset = sync_pullers(namespace).get(image or "")  # what it wants may have changed
    else:
        daemonset = kube.get("DaemonSet", pullers.puller_name(image), namespace) if image else None
    desired = with_prepull(desired, obj, daemonset, now)
    if _status_differs(status, desired):
        try:  # on exactly the version validated: a change since has its own event, a successor is not ours
            if not template_store.apply_status(namespace, name, desired,
                                               resource_version=meta.get("resourceVersion")):
                return template_deleted(namespace, name, uid)
        except kube.KubeError as exc:
            if not exc.conflict:
                raise
            if cascade and due and row is not None:  # the Sessions resolve the index, not this copy
                _fan_out(namespace, name, row)
            return "superseded"
    affects_sessions = (row is None or row.get("spec") != spec or row.get("phase") != phase
                        or row.get("message") != message)
    indexed = row
    if affects_sessions or row is None or row.get("uid") != uid or int(row.get("generation") or -1) != generation:
        replaces = row.get("uid") if row is not None and row.get("uid") != uid else None
        if not template_store.upsert_index(namespace, name, uid, generation, spec, phase, message, replaces=replaces,
                                           sessions_due=affects_sessions):
            return "superseded"  # a newer generation, or another Template of the name, was indexed meanwhile
        indexed = {"uid": uid, "spec": spec, "phase": phase, "message": message}
    if cascade and (affects_sessions or due) and indexed is not None:
        _fan_out(namespace, name, indexed)
    return "reconciled"


def _fan_out(namespace: str, name: str, indexed: Mapping[str, Any]) -> None:
    """Reconcile the Template's Sessions against the index row `indexed`, and record it done once
    every one of them was: until then the row stays due, and the event's retry (or the next event
    of the Template) runs the fan-out again. Idempotent: each Session reconcile is level-triggered."""
    reconcile_sessions_of(namespace, name)  # BatchFailed when one of them failed: the row stays due
    template_store.sessions_reconciled(namespace, name, indexed)


def reconcile_sessions_of(namespace: str, template: str) -> int:
    """Reconcile every Session of a Template (by label, plus index rows: kubectl-made Sessions may
    lack the label). One failing Session does not stop the others; the event is retried after when
    a retry can help (`BatchFailed`)."""
    sessions = {str((s.get("metadata") or {}).get("name")): s
                for s in kube.list_objects("Session", namespace, label_selector=f"{LABEL_TEMPLATE}={template}")}
    for name in index_store.names_of_template(namespace, template):
        if name not in sessions:
            found = kube.get("Session", name, namespace)
            if found is not None and (found.get("spec") or {}).get("template") == template:
                sessions[name] = found
    failures: list[DomainError] = []
    for session in sessions.values():
        if (session.get("spec") or {}).get("template") != template:
            continue
        try:
            settled(reconcile_session(session, source=Source.READ))
        except DomainError as exc:
            failures.append(exc)
            log.warning("session reconcile failed", extra={"session": (session.get("metadata") or {}).get("name"),
                                                            "kind": exc.kind.value, "reason": str(exc)})
    if failures:
        raise BatchFailed(f"{len(failures)} session(s) of template {template} could not be reconciled", failures)
    return len(sessions)
