"""Warm desktops: the rules that say which warm desktop fits a launch and which must be recycled.

A warm desktop is a pod of a Template's pool Deployment (`warm-<template>`), running the Template's
image with its default resources and no home volume, carrying no user's label, volume or
credential, and reachable by nobody (a deny-all NetworkPolicy; no Service or Ingress). A launch
claims one by relabelling it as the session's pod in one write guarded by its resourceVersion: the
pool Deployment releases it (it no longer matches the selector) and starts a replacement, and
exactly one of several concurrent claims of the same pod succeeds.

Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from streamspace.domain.resources import canonical_resources
from streamspace.records import record

if TYPE_CHECKING:
    from streamspace.domain.templates import WarmPoolSpec

WARM_APP = "streamspace-warm"  # app.kubernetes.io/name of a warm desktop (a session's is streamspace-session)
LABEL_FIT = "stream.space/warm-fit"  # what a warm desktop was started for (fit_key)
ANN_WARM_POD = "stream.space/warm-pod"  # on a Session: the warm desktop it claimed
POOL_PREFIX = "warm-"


def pool_name(template: str) -> str:
    """The pool Deployment (and NetworkPolicy) of a Template."""
    return f"{POOL_PREFIX}{template}"


# Template fields that do not shape the desktop a pod runs: changing them keeps the pool's desktops
# (a new pool size or schedule must never drain the pool). Any other field, known now or added
# later, is part of the fit: an unlisted field drains the pool rather than hand out a stale desktop.
NOT_THE_DESKTOP = frozenset({"warmPool", "prePull", "enabled", "displayName", "description", "category", "icon",
                             "tags"})


def fit_key(template_spec: Mapping[str, Any] | None, resources: Mapping[str, Any], *,
            profile_agent: bool = False) -> str:
    """What a launch must match to take a warm desktop: the Template's spec as it was when the
    desktop started (the fields that shape a desktop), the resources the session asks, and whether
    it runs a profile agent waiting for its claim (HOME_STORAGE=s3). A changed image, port, env or
    resources gives a new key, so the older desktops never fit again (and the pool replaces them)."""
    shaping = {k: v for k, v in (template_spec or {}).items() if k not in NOT_THE_DESKTOP}
    fit: dict[str, Any] = {"template": shaping, "resources": canonical_resources(resources)}
    if profile_agent:  # absent otherwise: the desktops of pools without profiles keep their key
        fit["profileAgent"] = True
    text = json.dumps(fit, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def profile_agents(home_storage: str, sidecar: str) -> bool:
    """Whether warm desktops carry a profile agent waiting for its claim: with HOME_STORAGE=s3 and
    native sidecars (PROFILE_SIDECAR=native: the agent starts, and holds its port, before the desktop)."""
    return home_storage == "s3" and sidecar == "native"


def pod_ready(pod: Mapping[str, Any]) -> bool:
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def claimable(pods: Sequence[Mapping[str, Any]], fit: str) -> list[Mapping[str, Any]]:
    """The warm desktops a launch with `fit` may claim: Ready, of this fit, oldest first (the
    oldest is the first recycled otherwise)."""
    found = [p for p in pods if ((p.get("metadata") or {}).get("labels") or {}).get(LABEL_FIT) == fit
             and pod_ready(p)]
    found.sort(key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""))
    return found


def _created(pod: Mapping[str, Any]) -> datetime | None:
    text = (pod.get("metadata") or {}).get("creationTimestamp")
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@record
class Recycle:
    pod: str
    reason: str  # MaxAge | Failed


def recycle(pods: Sequence[Mapping[str, Any]], max_age_seconds: int | None, now: datetime) -> list[Recycle]:
    """The warm desktops to delete (their pool Deployment replaces them): older than the maximum
    age, or whose image cannot be pulled (a new pod retries the pull)."""
    out: list[Recycle] = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        name = str(meta.get("name") or "")
        created = _created(pod)
        if max_age_seconds and created is not None and (now - created).total_seconds() > max_age_seconds:
            out.append(Recycle(name, "MaxAge"))
            continue
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if ((status.get("state") or {}).get("waiting") or {}).get("reason") in ("ErrImagePull", "ImagePullBackOff"):
                out.append(Recycle(name, "Failed"))
                break
    return out


def size_at(pool: WarmPoolSpec | None, now: datetime) -> int:
    """How many desktops `pool` keeps at the instant `now` (timezone-aware): the size of the
    schedule window it falls in (the largest, where windows overlap), else the base size."""
    from zoneinfo import ZoneInfo

    if pool is None:
        return 0
    if not pool.schedule:
        return pool.size
    local = now.astimezone(ZoneInfo(pool.time_zone))
    minute = local.hour * 60 + local.minute
    sizes = [w.size for w in pool.schedule if local.weekday() in w.days and w.start_minute <= minute < w.end_minute]
    return max(sizes) if sizes else pool.size


def peak_size(warm_pool: object) -> int:
    """The most desktops a Template's spec.warmPool (as stored, possibly invalid) ever asks for:
    its size or a schedule window's, whichever is larger; 0 for anything unreadable. The platform
    budget holds every pool at its peak, and a pooled Template is one whose peak is above 0."""
    if not isinstance(warm_pool, Mapping):
        return 0
    windows = warm_pool.get("schedule")
    sizes = [warm_pool.get("size")]
    if isinstance(windows, list):
        sizes += [w.get("size") for w in windows if isinstance(w, Mapping)]
    return max([0, *(n for n in sizes if isinstance(n, int) and not isinstance(n, bool))])


def wanted_image(template: Mapping[str, Any]) -> str | None:
    """The image a Template (as stored, possibly invalid) wants on every node ahead of any launch, or
    None: its image when `spec.prePull` is true or it keeps a warm pool at some time (`peak_size`
    above 0: a pooled desktop, and the one started when the pool is empty, should never wait for a
    pull); none for a disabled Template (nobody can launch it) or one being deleted. The one rule for
    both the pre-pull DaemonSets (reconcile/pullers.py) and a launch's predicted start kind."""
    meta = template.get("metadata") or {}
    spec = template.get("spec")
    if not isinstance(spec, Mapping) or meta.get("deletionTimestamp") or spec.get("enabled") is False:
        return None
    image = spec.get("baseImage")
    if not isinstance(image, str) or not image:
        return None
    return image if spec.get("prePull") is True or peak_size(spec.get("warmPool")) > 0 else None


def over_budget(sizes: Mapping[str, int], template: str, size: int, budget: int) -> str | None:
    """Why `template`'s pool of `size` does not fit the platform budget next to the other pools
    (`sizes`: template -> size), or None when it fits."""
    others = sum(n for name, n in sizes.items() if name != template)
    if others + size <= budget:
        return None
    return (f"a warm pool of {size} (at its largest) does not fit the platform budget of {budget} warm desktops "
            f"({others} already kept by other templates); lower the size or raise warmPool.budget")
