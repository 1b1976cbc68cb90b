"""PodDisruptionBudgets as the eviction subresource enforces them.

As pkg/registry/core/pod/storage/eviction.go: a pod that is Pending, finished or already being deleted is
evicted without looking at budgets; a pod covered by more than one budget cannot be evicted (500); a budget
that allows no disruption answers 429 TooManyRequests with a `DisruptionBudget` cause. What a budget allows
is what the disruption controller (pkg/controller/disruption/disruption.go) would have computed:
desiredHealthy from minAvailable (a count or a percentage of the expected pods, rounded up) or from the
expected pods less maxUnavailable (rounded up as a percentage), disruptionsAllowed = currentHealthy -
desiredHealthy. The simulation computes it at the moment of the eviction (expected pods: the live pods the
budget selects) and does not write the budget's status.
"""

from __future__ import annotations

import math
from typing import Any

from .builtin import selector_matches
from .errors import ApiError

PDB_KEY = ("policy", "poddisruptionbudgets")
POD_KEY = ("", "pods")
TOO_MANY = "Cannot evict pod as it would violate the pod's disruption budget."


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _count(value: Any, expected: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        share = int(value[:-1]) * expected / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value)


def check_eviction(store: Any, pod: dict[str, Any]) -> None:
    """Raise the API server's refusal when evicting `pod` would break its budget (caller holds the store)."""
    meta = pod["metadata"]
    if meta.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") in ("Pending", "Succeeded",
                                                                                  "Failed"):
        return
    ns = meta.get("namespace", "")
    labels = meta.get("labels") or {}
    budgets = [b for b in store.items(PDB_KEY, ns)
               if (b.get("spec") or {}).get("selector") is not None
               and selector_matches((b.get("spec") or {}).get("selector") or {}, labels)]
    if not budgets:
        return
    if len(budgets) > 1:
        raise ApiError(500, "InternalError", "This pod has more than one PodDisruptionBudget, which the eviction "
                                             "subresource does not support.")
    budget = budgets[0]
    spec = budget.get("spec") or {}
    selected = [p for p in store.items(POD_KEY, ns)
                if not p["metadata"].get("deletionTimestamp")
                and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                and selector_matches(spec.get("selector") or {}, p["metadata"].get("labels") or {})]
    expected = len(selected)
    healthy = sum(1 for p in selected if _ready(p))
    if spec.get("minAvailable") is not None:
        desired = _count(spec["minAvailable"], expected, round_up=True)
    elif spec.get("maxUnavailable") is not None:
        desired = max(0, expected - _count(spec["maxUnavailable"], expected, round_up=True))
    else:
        desired = 0  # neither set: the controller asks for no healthy pods
    if healthy - desired <= 0:
        name = budget["metadata"]["name"]
        raise ApiError(429, "TooManyRequests", TOO_MANY, {"causes": [{
            "reason": "DisruptionBudget",
            "message": f"The disruption budget {name} needs {desired} healthy pods and has {healthy} currently"}]})
