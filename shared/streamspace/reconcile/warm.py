"""Warm pools: template-reconcile keeps each Template's pool of unassigned desktops in step.

`pool_objects(...)` (pure) is the whole desired pool of a Template: a Deployment `warm-<template>`
with `warmPool.size` replicas of the Template's desktop (default resources, no home volume, no
user label), owned by the Template (deleting the Template removes its pool), and a NetworkPolicy
that lets nothing in. Both are applied with server-side apply; the Deployment controller keeps
the count: a claimed desktop leaves the pool (relabelled) and is replaced, a dead one likewise.
A changed Template changes the pod template, so the pool is drained and replaced (strategy
Recreate); `recycle_pool` deletes desktops older than `maxAge` and those whose image cannot be
pulled. The pool's state is reported in the Template's `WarmPool` condition.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from streamspace import kube
from streamspace.domain.conversion import API_VERSION
from streamspace.domain.errors import UpstreamRefused, ValidationError
from streamspace.domain.templates import env_reference_problems, parse_template_spec
from streamspace.domain.warm import LABEL_FIT, WARM_APP, fit_key, over_budget, peak_size, pool_name, recycle, size_at
from streamspace.reconcile.desired import (
    APP_NAME,
    LABEL_TEMPLATE,
    MANAGED_BY,
    MANAGER_NAME,
    PROFILE_CLAIM_PORT_NAME,
    SESSION_APP,
    ReconcileConfig,
    claim_ingress,
    egress_rules,
    pod_spec_for,
    warm_profiles,
)
from streamspace.records import record
from streamspace.sessions import warm_store
from streamspace.settings.effective import load_config
from streamspace.templates import store as template_store

log = logging.getLogger("streamspace.reconcile.warm")


def pool_selector(template: str) -> dict[str, str]:
    return {APP_NAME: WARM_APP, LABEL_TEMPLATE: template}


def pool_objects(template_obj: Mapping[str, Any], spec: Any, config: ReconcileConfig,
                 size: int) -> list[dict[str, Any]]:
    """The NetworkPolicy and Deployment of a Template's warm pool (`spec`: its parsed TemplateSpec)."""
    meta = template_obj.get("metadata") or {}
    name, namespace = str(meta["name"]), str(meta["namespace"])
    pod_spec, resources = pod_spec_for(spec, config)
    fit = fit_key(template_obj.get("spec"), resources, profile_agent=warm_profiles(config))
    labels = {**pool_selector(name), MANAGED_BY: MANAGER_NAME}
    owner = [{"apiVersion": API_VERSION, "kind": "Template", "name": name, "uid": str(meta.get("uid") or ""),
              "controller": True, "blockOwnerDeletion": True}]
    common = {"name": pool_name(name), "namespace": namespace, "labels": dict(labels), "ownerReferences": owner}
    return [
        {
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": dict(common),
            # Nobody reaches an unassigned desktop (but session-reconcile its profile agent's claim port,
            # where there is one). It still selects the desktop once claimed (the claim relabels it
            # app=session, keeping the template label): between the claim and session-reconcile's
            # apply of the session's own policy no other policy selects it, and a pod no policy
            # selects is open both ways. It allows nothing the session's policy does not.
            "spec": {"podSelector": {"matchLabels": {LABEL_TEMPLATE: name, MANAGED_BY: MANAGER_NAME},
                                     "matchExpressions": [{"key": APP_NAME, "operator": "In",
                                                           "values": [WARM_APP, SESSION_APP]}]},
                     "policyTypes": ["Ingress", "Egress"],
                     "ingress": [claim_ingress(config)] if warm_profiles(config) else [],
                     "egress": egress_rules(config)},
        },
        {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": dict(common),
            "spec": {
                "replicas": size,
                "revisionHistoryLimit": 1,
                "strategy": {"type": "Recreate"},  # a changed Template drains the whole pool first
                "selector": {"matchLabels": pool_selector(name)},
                "template": {"metadata": {"labels": {**labels, LABEL_FIT: fit}}, "spec": pod_spec},
            },
        },
    ]


def _condition(old: Mapping[str, Any] | None, ok: bool, reason: str, message: str, now: str) -> dict[str, Any]:
    value = "True" if ok else "False"
    since = str(old["lastTransitionTime"]) if old and old.get("status") == value and old.get(
        "lastTransitionTime") else now
    return {"type": "WarmPool", "status": value, "lastTransitionTime": since, "reason": reason, "message": message}


def reconcile_pool(template_obj: Mapping[str, Any], spec: Any, now: str,
                   templates: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any] | None:
    """Apply (or remove) a Template's pool; the WarmPool condition to report, or None when the
    Template never had a pool (nothing to say, nothing to remove: no request at all).

    `template_obj` is the event's copy, which may be older than the Template: the pool is built
    from the live Template (one list of the namespace's Templates, which the shared budget needs
    anyway), so a late event never rolls the pool back to an older spec. `templates`: that list,
    when the caller has just made it (resync), instead of a list of its own."""
    meta = template_obj.get("metadata") or {}
    name, namespace = str(meta["name"]), str(meta["namespace"])
    if peak_size(_warm_pool(template_obj)) == 0 and _old_condition(template_obj) is None:
        return None
    if templates is None:
        templates = template_store.list_objects(namespace)
    by_name = {str((t.get("metadata") or {}).get("name")): t for t in templates}
    live = by_name.get(name)
    if live is None or (live.get("metadata") or {}).get("uid") != meta.get("uid"):
        return None  # deleted (its pool goes with it) or re-created (its own events follow)
    old = _old_condition(live)
    config = load_config()
    live_spec = _usable(live.get("spec"), config) if spec is not None else None
    pool = live_spec.warm_pool if live_spec is not None else None
    if pool is None or pool.peak == 0:
        if old is None:
            return None
        _remove_pool(namespace, name)
        reason = "NoPool" if live_spec is not None else "TemplateInvalid"
        return _condition(old, False, reason, "no warm desktops are kept", now)
    peaks = {n: peak_size(_warm_pool(t)) for n, t in by_name.items()}
    problem = over_budget(peaks, name, pool.peak, config.warm_pool_budget)
    if problem is not None:
        _remove_pool(namespace, name)
        return _condition(old, False, "OverBudget", problem, now)
    # The schedule is evaluated at every reconcile: the Template's events and resync's tick (every
    # five minutes), so a window opens or closes at most one tick late.
    size = size_at(pool, datetime.fromisoformat(now.replace("Z", "+00:00")))
    for obj in pool_objects(live, live_spec, config, size):
        kube.apply(obj)
    recycle_pool(namespace, name, pool.max_age_seconds)
    message = f"keeping {size} warm desktop(s)"
    if pool.schedule:
        message += f" now, by its schedule ({pool.size} outside its windows, {pool.peak} at most)"
    return _condition(old, True, "PoolApplied", message, now)


def _old_condition(template_obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return next((c for c in (template_obj.get("status") or {}).get("conditions") or []
                 if isinstance(c, Mapping) and c.get("type") == "WarmPool"), None)


def _warm_pool(template_obj: Mapping[str, Any]) -> object:
    return (template_obj.get("spec") or {}).get("warmPool")


def _usable(spec: object, config: ReconcileConfig) -> Any:
    """The parsed spec when a session could run it (valid, env only from marked objects), else None."""
    try:
        parsed = parse_template_spec(spec)
    except ValidationError:
        return None
    if env_reference_problems(parsed.env, config.env_secrets, config.env_config_maps):
        return None
    return parsed


def _remove_pool(namespace: str, template: str) -> None:
    kube.delete("Deployment", pool_name(template), namespace)
    kube.delete("NetworkPolicy", pool_name(template), namespace)


def recycle_pool(namespace: str, template: str, max_age_seconds: int | None,
                 now: datetime | None = None) -> list[str]:
    """Delete the pool's desktops that are too old at `now` or cannot start (the Deployment
    replaces them); each one counts as a recycle."""
    selector = ",".join(f"{k}={v}" for k, v in pool_selector(template).items())
    pods = kube.list_objects("Pod", namespace, label_selector=selector)
    done = []
    for item in recycle(pods, max_age_seconds, now or datetime.now(UTC)):
        if kube.delete("Pod", item.pod, namespace):
            done.append(item.pod)
            log.info("warm desktop recycled", extra={"template": template, "pod": item.pod, "reason": item.reason})
    if done:
        warm_store.count(namespace, template, recycles=len(done))
    return done


# -- the profile of a claimed desktop (HOME_STORAGE=s3) ------------------------------------------------

CLAIM_WAIT_SECONDS = 20  # how long one hand-over waits for the restore (within the Trigger's 60 s timeout)
PROFILE_RESTORED = "ProfileRestored"  # the Session's condition while it runs in a claimed warm desktop


@record
class Restore:
    """How restoring the profile into a claimed warm desktop went, as its agent answered."""

    done: bool  # finished, either way (False: still restoring)
    ok: bool  # restored (or there was nothing to restore)
    message: str  # the agent's words


class HandOverFailed(UpstreamRefused):
    """The claimed desktop's agent did not take the token (unreachable, not there, refused it). Not
    retried: session-reconcile starts the session's own desktop instead (a cold start)."""

    default_error = "profile hand-over failed"


def hand_over(pod: Mapping[str, Any], token: str, wait: float = CLAIM_WAIT_SECONDS) -> Restore:
    """Give the session's profile token to the agent of the warm desktop it claimed, and wait up to
    `wait` seconds for the restore. The token goes only to that pod's agent: its address as the
    kubelet reported it, its claim port as its spec declares it, and the pod's uid, which the agent
    checks against its own (a reused address never gets a token meant for another pod). The
    NetworkPolicies let only session-reconcile reach that port. Asking again with the same token
    is answered with the restore's state (idempotent)."""
    # urllib.request (and the tempfile, shutil and lzma it loads) costs every reconcile function's cold
    # start a few milliseconds; only a claim with HOME_STORAGE=s3 comes here.
    import urllib.error
    import urllib.request

    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    port = next((p.get("containerPort") for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
                 for p in c.get("ports") or [] if p.get("name") == PROFILE_CLAIM_PORT_NAME), None)
    address = status.get("podIP")
    if not isinstance(port, int) or not isinstance(address, str) or not address:
        raise HandOverFailed("the warm desktop has no profile agent waiting for a claim")
    host = f"[{address}]" if ":" in address else address
    body = json.dumps({"token": token, "pod": str(meta.get("uid") or ""), "wait": wait}).encode()
    request = urllib.request.Request(f"http://{host}:{port}/claim", data=body, method="POST",  # noqa: S310
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=wait + 10) as answer:  # noqa: S310 - the pod's own address
            code, text = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise HandOverFailed(f"its profile agent refused the claim: HTTP {exc.code} {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise HandOverFailed(f"its profile agent did not answer: {exc}") from None
    try:
        state = json.loads(text)
    except ValueError:
        raise HandOverFailed("its profile agent answered something else than JSON") from None
    if code == 202 or state.get("state") == "restoring":
        return Restore(False, False, "restoring the saved home into the desktop")
    return Restore(True, state.get("state") == "restored", str(state.get("message") or ""))


def recorded_restore(session: Mapping[str, Any], pod: str) -> Restore | None:
    """The restore's outcome the Session's status already reports for this desktop (None: not yet)."""
    status = session.get("status") or {}
    if status.get("podName") != pod:
        return None
    condition = next((c for c in status.get("conditions") or []
                      if isinstance(c, Mapping) and c.get("type") == PROFILE_RESTORED), None)
    if condition is None or condition.get("status") not in ("True", "False"):
        return None
    return Restore(True, condition.get("status") == "True", str(condition.get("message") or ""))
