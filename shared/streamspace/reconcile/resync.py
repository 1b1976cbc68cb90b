"""resync: the periodic repair of whatever the ApiServerSource missed (it has no resync of its own,
sends nothing for objects that existed before it started, and loses changes during watch gaps).

Every five minutes: list Templates, Sessions, the objects we own and the session pods (eight list
requests in all, whatever the number of sessions), then reconcile, with what was listed, every
Template whose status or index row lags or that keeps a warm pool (reconcile/warm.py: re-applied,
desktops past maxAge recycled), and every Session: a Session whose objects, status and
index row are in step costs nothing more; one with a missing owned object has its whole set
re-applied. Index rows without a Session are removed, Sessions without a row get one.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from streamspace import kube
from streamspace.config import environment
from streamspace.domain.errors import DomainError
from streamspace.domain.names import home_claim_name, session_object_name
from streamspace.domain.warm import peak_size
from streamspace.events import BatchFailed
from streamspace.reconcile import index
from streamspace.reconcile.desired import APP_NAME, HOME_APP, LABEL_SESSION, MANAGED_BY, OWNED_KINDS, SESSION_APP
from streamspace.reconcile.session import Source, reconcile_session, settled
from streamspace.reconcile.template import Listed, reconcile_template, refresh_prepull_status, sync_pullers
from streamspace.sessions import index_store
from streamspace.settings.effective import load_config
from streamspace.templates import store as template_store

log = logging.getLogger("streamspace.reconcile.resync")

ORPHAN_ROW_GRACE_SECONDS = 120  # the sessions API inserts the row just before it creates the Session
TOMBSTONE_DAYS = 1


@dataclass
class ResyncResult:
    templates_reconciled: list[str] = field(default_factory=list)
    templates_dropped: list[str] = field(default_factory=list)
    sessions_checked: int = 0
    sessions_changed: list[str] = field(default_factory=list)
    rows_removed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    failures: list[DomainError] = field(default_factory=list, repr=False)  # the errors of `failed`, in order

    def fail(self, what: str, error: DomainError) -> None:
        self.failed.append(what)
        self.failures.append(error)

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "failures"}


def _name(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def run_resync(namespace: str | None = None) -> ResyncResult:
    ns = namespace or environment().sessions_namespace
    result = ResyncResult()

    # Templates first: Sessions resolve them from the index.
    template_rows = template_store.index_rows(ns)
    templates = template_store.list_objects(ns)
    # Image pullers first, from the Templates as listed: each Template reconciled below then reads
    # its puller from here instead of listing every Template and puller again (N Templates to
    # reconcile, as on a fresh installation, were 2N lists of N).
    try:  # those whose events were missed: made and removed
        pulling: dict[str, dict[str, Any]] | None = sync_pullers(ns, templates)
    except DomainError as exc:
        pulling = None
        result.fail("image-pullers", exc)
        log.warning("image puller resync failed", extra={"reason": str(exc)})
    listed = Listed(templates, pulling) if pulling is not None else None
    for template in templates:
        meta = template.get("metadata") or {}
        row = template_rows.get(_name(template))
        generation = int(meta.get("generation") or 0)
        status = template.get("status") or {}
        # A pooled Template is reconciled every time: its pool is re-applied (a no-op when in step),
        # refilled if someone removed it, and its too old or failed desktops are recycled.
        pooled = peak_size((template.get("spec") or {}).get("warmPool")) > 0 or any(
            c.get("type") == "WarmPool" for c in status.get("conditions") or [])
        if (pooled or row is None or row.get("uid") != meta.get("uid") or int(row.get("generation") or -1) != generation
                or status.get("observedGeneration") != generation or status.get("phase") != row.get("phase")):
            try:
                reconcile_template(template, action="read", cascade=False, listed=listed)
                result.templates_reconciled.append(_name(template))
            except DomainError as exc:
                result.fail(f"template/{_name(template)}", exc)
                log.warning("template resync failed", extra={"template": _name(template), "reason": str(exc)})
    if pulling is not None:
        try:  # the pre-pull counts; those reconciled above wrote their whole status already
            refresh_prepull_status(ns, [t for t in templates if _name(t) not in result.templates_reconciled],
                                   pulling)
        except DomainError as exc:
            result.fail("image-pullers", exc)
            log.warning("image puller resync failed", extra={"reason": str(exc)})
    names = {_name(t) for t in templates}
    for name in template_rows:
        if name not in names:
            template_store.delete_index(ns, name)
            result.templates_dropped.append(name)

    managed = f"{MANAGED_BY}=streamspace"
    selector = f"{APP_NAME}={SESSION_APP},{managed}"
    config = load_config()
    # Not the profile agent's Secret (HOME_STORAGE=s3): resync may not read Secrets. One deleted by hand
    # comes back with the next apply of the whole set (deleting the Deployment starts one).
    owned = {kind: {_name(o): o for o in kube.list_objects(kind, ns, label_selector=selector)} for kind in OWNED_KINDS}
    claims = {_name(o) for o in kube.list_objects("PersistentVolumeClaim", ns,
                                                   label_selector=f"{APP_NAME}={HOME_APP},{managed}")}
    pods: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for pod in kube.list_objects("Pod", ns, label_selector=f"{APP_NAME}={SESSION_APP}"):
        session_label = ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_SESSION)
        if session_label:
            pods[session_label].append(pod)
    sessions = kube.list_objects("Session", ns)
    rows = index_store.rows_of_namespace(ns)
    if result.templates_reconciled or result.templates_dropped:  # the index changed: read what it is now
        template_rows = template_store.index_rows(ns)

    unsettled: set[str] = set()  # Templates with a Session whose reconcile failed
    for session in sessions:
        name = _name(session)
        spec = session.get("spec") or {}
        if not isinstance(spec.get("user"), str) or not isinstance(spec.get("template"), str):
            continue
        result.sessions_checked += 1
        child = session_object_name(name)
        state = spec.get("state") or "running"
        present = [kind for kind in OWNED_KINDS if child in owned[kind]]
        if state == "terminated":
            force = bool(present)
        else:
            missing = [kind for kind in OWNED_KINDS if child not in owned[kind]]
            needs_claim = (spec.get("persistentHome", True) is not False and config.home_storage != "s3"
                           and home_claim_name(spec["user"]) not in claims)
            # A missing Deployment is re-applied anyway; anything else missing needs the whole set.
            force = needs_claim or bool(missing and missing != ["Deployment"])
        ctx = index.SessionContext(row=rows.get(name), template=template_rows.get(spec["template"]),
                                     tombstoned=False, config=config)
        before = (session.get("status") or {}, rows.get(name))
        try:
            settled(reconcile_session(session, source=Source.READ, deployment=owned["Deployment"].get(child),
                                      force_apply=force, ctx=ctx, pods=pods.get(name, [])))
        except DomainError as exc:
            result.fail(f"session/{name}", exc)
            unsettled.add(spec["template"])
            log.warning("session resync failed", extra={"session": name, "reason": str(exc)})
            continue
        if force or before[1] is None or before[1].get("observed_generation") != (session.get("metadata") or {}).get(
                "generation"):
            result.sessions_changed.append(name)

    # Every listed Session was reconciled against these rows: the fan-out each due row waits for (the
    # Templates above were reconciled without one) is done, unless one of its Sessions failed. Left
    # due, the Template's next event (the echo of the status written above) would reconcile all its
    # Sessions again. A row changed since it was read stays due (sessions_reconciled compares).
    for name, template_row in template_rows.items():
        if template_row.get("sessions_due") and name not in unsettled:
            template_store.sessions_reconciled(ns, name, template_row)

    live = {_name(s) for s in sessions}
    for name, row in rows.items():
        if name in live:
            continue
        if index_store.row_older_than(ns, name, ORPHAN_ROW_GRACE_SECONDS) and kube.get("Session", name, ns) is None:
            index.forget_session(ns, name, row.get("uid"))
            result.rows_removed.append(name)
    index_store.drop_tombstones_older_than(TOMBSTONE_DAYS)
    if result.failures:
        raise BatchFailed(f"resync could not repair: {', '.join(result.failed)}", result.failures)
    return result
