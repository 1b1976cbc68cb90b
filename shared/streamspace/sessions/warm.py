"""Claiming a warm desktop for a launch (the pool itself: streamspace.reconcile.warm).

A launch fits a warm desktop when it names a pooled Template, asks the Template's default
resources and wants no persistent home volume (a warm desktop cannot mount a user's volume before
it is known whose it is). The claim is one write: a merge patch of the pod's labels carrying the
pod's resourceVersion as a precondition, which the API server refuses with 409 when anyone else
changed the pod first. Of several launches racing for one desktop, exactly one wins; the others
try the next desktop, and start cold when none is left. The relabelled pod stops matching its pool
Deployment, which lets it go and starts a replacement (the pool refills by itself).

Until the claim, the desktop carries nothing of anyone: no user label, no home volume, no Service
or Ingress (nobody can reach it), no credential. After it, the session's own objects select it:
its Service, its NetworkPolicy and its Ingress, behind the forward-auth check of that session only.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import Any

from streamspace import kube
from streamspace.config import environment
from streamspace.domain.conversion import API_VERSION
from streamspace.domain.errors import NotFound
from streamspace.domain.labels import APP_NAME, LABEL_SESSION, LABEL_TEMPLATE, LABEL_USER, SESSION_APP
from streamspace.domain.names import is_dns_label
from streamspace.domain.warm import (
    LABEL_FIT,
    WARM_APP,
    claimable,
    fit_key,
    peak_size,
    pod_ready,
    pool_name,
    profile_agents,
)
from streamspace.records import record
from streamspace.sessions import warm_store
from streamspace.settings.service import WARM_POOL_BUDGET, platform_settings
from streamspace.templates import store as template_store

log = logging.getLogger("streamspace.sessions.warm")

CLAIM_ATTEMPTS = 8  # desktops tried before starting cold (each lost race costs one request)
TAKE_ATTEMPTS = 4  # patches of one desktop whose 409s came from writes that did not claim it (status)


@record
class WarmStart:
    """The outcome of looking for a warm desktop: the claimed pod, or why none was used."""

    pod: str | None
    reason: str

    def as_api(self) -> dict[str, Any]:
        return {"claimed": self.pod is not None, "reason": self.reason}


def why_not(template: Mapping[str, Any], persistent_home: bool) -> str | None:
    """Why this launch cannot use a warm desktop at all (None: it may). A home kept as a profile
    (HOME_STORAGE=s3) is restored into the claimed desktop by its agent; a home volume cannot be
    mounted into a running desktop."""
    if peak_size((template.get("spec") or {}).get("warmPool")) <= 0:
        return "the template keeps no warm desktops"
    if persistent_home and environment().home_storage == "s3" and not _profile_agents():
        return ("a session that keeps its home starts its own desktop here: restoring a profile into a warm "
                "desktop needs native sidecars (PROFILE_SIDECAR=native, Kubernetes 1.29 or later)")
    if persistent_home and environment().home_storage != "s3":
        return ("a session with a persistent home volume starts its own desktop (a warm desktop cannot mount "
                "your volume); launch with persistentHome: false to use one")
    return None


def _profile_agents() -> bool:
    env = environment()
    return profile_agents(env.home_storage, env.profile_agent.sidecar)


def candidates(namespace: str, template: Mapping[str, Any],
               resources: Mapping[str, Any]) -> tuple[list[Mapping[str, Any]], list[dict[str, Any]]]:
    """(the ready desktops of `template` started with `resources`, oldest first; every desktop of
    its pool), as listed now."""
    template_name = str((template.get("metadata") or {}).get("name"))
    pods = kube.list_objects("Pod", namespace, label_selector=f"{APP_NAME}={WARM_APP},{LABEL_TEMPLATE}={template_name}")
    return claimable(pods, fit_key(template.get("spec"), resources, profile_agent=_profile_agents())), pods


def take(namespace: str, pod: Mapping[str, Any], session: str, user_label: str) -> bool:
    """Claim `pod` as listed for `session`: one patch guarded by the resourceVersion it was listed
    with. False when another launch claimed it first (or it was recycled or stopped being Ready).

    Any write bumps a pod's resourceVersion, the kubelet's status writes too (a probe's result, a
    container restart), so a 409 alone does not say a claim won: the pod is read again and, while it
    is still an unclaimed, Ready desktop of the same fit, the claim is tried again on that version."""
    meta = pod["metadata"]
    fit = (meta.get("labels") or {}).get(LABEL_FIT)
    version = meta["resourceVersion"]
    for _ in range(TAKE_ATTEMPTS):
        patch = {"metadata": {"resourceVersion": version, "labels": {
            APP_NAME: SESSION_APP, LABEL_SESSION: session, LABEL_USER: user_label,
            LABEL_FIT: None, "pod-template-hash": None}}}
        try:
            kube.merge_patch("Pod", meta["name"], patch, namespace)
            return True
        except kube.KubeError as exc:
            if exc.status == 404:
                return False
            if exc.status != 409:
                raise
        # Listed by name (field selector metadata.name): the sessions function may list pods, not get them.
        fresh = claimable(kube.list_objects("Pod", namespace, field_selector=f"metadata.name={meta['name']}"),
                          str(fit))
        if not fresh:
            return False  # a real lost race: someone else's now (or no longer a ready warm desktop)
        version = fresh[0]["metadata"]["resourceVersion"]
    return False


def claim(namespace: str, template: Mapping[str, Any], resources: Mapping[str, Any], session: str,
          user_label: str) -> WarmStart:
    """Claim a ready warm desktop of `template` started with `resources` for `session`; the claim
    is counted (or the miss)."""
    template_name = str((template.get("metadata") or {}).get("name"))
    fitting, pods = candidates(namespace, template, resources)
    # Spread concurrent launches over the desktops instead of all racing for the oldest.
    tries = fitting[:CLAIM_ATTEMPTS]
    random.shuffle(tries)
    for pod in tries:
        if take(namespace, pod, session, user_label):
            warm_store.count(namespace, template_name, claims=1)
            return WarmStart(str(pod["metadata"]["name"]), "claimed a warm desktop")
    warm_store.count(namespace, template_name, misses=1)
    if fitting:
        return WarmStart(None, "every ready warm desktop was taken by other launches; the pool is refilling")
    if any(pod_ready(p) for p in pods):
        return WarmStart(None, "no warm desktop has the resources this session asks (warm desktops run the "
                               "template's default resources)")
    return WarmStart(None, "no warm desktop of this template is ready; the pool is refilling")


def bind(namespace: str, pod: str, session: Mapping[str, Any]) -> None:
    """Make the claimed desktop the Session's: deleting the Session deletes it."""
    meta = session.get("metadata") or {}
    owner = {"apiVersion": str(session.get("apiVersion") or API_VERSION), "kind": "Session",
             "name": meta.get("name"), "uid": meta.get("uid"), "controller": True, "blockOwnerDeletion": True}
    kube.merge_patch("Pod", pod, {"metadata": {"ownerReferences": [owner]}}, namespace)


def release(namespace: str, pod: str) -> None:
    """Compensation: a claimed desktop whose Session could not be created is deleted (it may have
    been shown nothing, but it is no longer anonymous: it carries the user's label)."""
    try:
        kube.delete("Pod", pod, namespace)
    except kube.KubeError:
        log.exception("could not delete a claimed warm desktop", extra={"pod": pod})


def pool_report(namespace: str, name: str) -> dict[str, Any]:
    """A Template's warm pool for admins: what it keeps now and is asked to (its size, schedule and
    largest size), the ready desktops, the shared budget, the claims, misses and recycles counted so
    far, and the WarmPool condition template-reconcile wrote."""
    obj = template_store.read(namespace, name) if is_dns_label(name) else None
    if obj is None:
        raise NotFound(f"template {name!r} not found")
    pool = (obj.get("spec") or {}).get("warmPool") or {}
    deployment = kube.get("Deployment", pool_name(name), namespace) if peak_size(pool) else None
    return _report(obj, deployment, warm_store.counters(namespace), int(platform_settings()[WARM_POOL_BUDGET]))


def pool_reports(namespace: str) -> list[dict[str, Any]]:
    """`pool_report` of every Template that keeps (or kept) a pool, by name: one list of Templates,
    one of pool Deployments and one counter query, whatever the number of pools."""
    pooled = [t for t in template_store.list_objects(namespace)
              if peak_size((t.get("spec") or {}).get("warmPool")) or _pool_condition(t)]
    if not pooled:
        return []
    deployments = {str(d["metadata"]["name"]): d for d in kube.list_objects(
        "Deployment", namespace, label_selector=f"{APP_NAME}={WARM_APP}")}
    counted, budget = warm_store.counters(namespace), int(platform_settings()[WARM_POOL_BUDGET])
    reports = [_report(t, deployments.get(pool_name(str(t["metadata"]["name"]))), counted, budget) for t in pooled]
    return sorted(reports, key=lambda r: str(r["template"]))


def _pool_condition(template: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return next((c for c in (template.get("status") or {}).get("conditions") or []
                 if isinstance(c, Mapping) and c.get("type") == "WarmPool"), None)


def _report(template: Mapping[str, Any], deployment: Mapping[str, Any] | None,
            counted: Mapping[str, Mapping[str, int]], budget: int) -> dict[str, Any]:
    name = str(template["metadata"]["name"])
    pool = (template.get("spec") or {}).get("warmPool") or {}
    condition = _pool_condition(template)
    # size: what the pool keeps now (its Deployment, which a schedule window may have resized);
    # baseSize: outside the windows; peak: what the budget holds for it.
    return {"template": name, "size": int(((deployment or {}).get("spec") or {}).get("replicas") or 0),
            "baseSize": int(pool.get("size") or 0), "peak": peak_size(pool), "maxAge": pool.get("maxAge"),
            "timeZone": pool.get("timeZone") or "UTC", "schedule": list(pool.get("schedule") or []),
            "ready": int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0), "budget": budget,
            **counted.get(name, {"claims": 0, "misses": 0, "recycles": 0}),
            "condition": {k: condition.get(k) for k in ("status", "reason", "message")} if condition else None}
