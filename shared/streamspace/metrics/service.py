"""The platform summary behind GET /api/v1/metrics: a user sees their own sessions; operators and
admins see everyone's, the cluster block and the dead letters."""

from __future__ import annotations

from typing import Any

from streamspace.auth.principal import Principal
from streamspace.cluster.service import cpu_millicores, memory_bytes
from streamspace.config import environment
from streamspace.dead_letters.service import counts as dead_letter_counts
from streamspace.domain.quantity import format_cpu, format_memory
from streamspace.kube import KubeError
from streamspace.metrics import store
from streamspace.sessions import warm_store

__all__ = ["cluster_summary", "dead_letter_counts", "platform_summary"]


def platform_summary(caller: Principal) -> dict[str, Any]:
    everything = caller.role in ("operator", "admin")
    row = store.platform_counts(everything, caller.user_id, environment().heartbeat_window_seconds)
    return {
        "sessions": {"running": row.get("running", 0), "hibernated": row.get("hibernated", 0),
                     "total": row.get("total", 0)},
        "activeConnections": row.get("connections", 0),
        "repositories": row.get("repositories", 0),
        "templates": row.get("templates", 0),
        "cluster": cluster_summary() if everything else None,
        # Dead CloudEvents by status (operators and admins): open ones need someone to look.
        "deadLetters": dead_letter_counts() if everything else None,
    }


def cluster_summary() -> dict[str, Any]:
    """Nodes (from the cluster), sessions and the resources running sessions hold (from the index),
    and users. When the cluster does not answer, `nodes` is null with the reason: the rest still counts."""
    row = store.cluster_counts()
    nodes: dict[str, Any] | None = None
    nodes_error = None
    try:
        items = store.nodes()
    except KubeError as exc:
        nodes_error = f"{exc.describe()}: {exc.message}"  # a 403 is RBAC, not an unreachable cluster
    else:
        ready = [n for n in items if any(c.get("type") == "Ready" and c.get("status") == "True"
                                          for c in (n.get("status") or {}).get("conditions") or [])]
        cpu = sum(cpu_millicores(((n.get("status") or {}).get("allocatable") or {}).get("cpu", 0)) for n in ready)
        memory = sum(memory_bytes(((n.get("status") or {}).get("allocatable") or {}).get("memory", 0)) for n in ready)
        nodes = {"total": len(items), "ready": len(ready), "allocatable": {"cpu": format_cpu(cpu),
                                                                           "memory": format_memory(memory)}}
    return {
        "nodes": nodes,
        **({"nodesError": nodes_error} if nodes_error else {}),
        "sessions": {"running": row.get("running", 0), "hibernated": row.get("hibernated", 0),
                     "total": row.get("total", 0)},
        "resources": {"cpu": format_cpu(int(row.get("cpu_millis", 0))),
                      "memory": format_memory(int(row.get("memory_bytes", 0)))},
        "users": {"total": row.get("users", 0), "active": row.get("active_users", 0)},
        # Per pooled Template: launches that took a warm desktop, found none, and desktops recycled.
        "warmPools": warm_store.counters(environment().sessions_namespace),
    }
