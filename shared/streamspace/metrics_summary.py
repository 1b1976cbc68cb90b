"""The platform summary behind GET /api/v1/metrics: one SQL statement over the indexes."""

from __future__ import annotations

from typing import Any

from streamspace.auth.principal import Principal

_SUMMARY_SQL = """
SELECT
  (SELECT count(*) FILTER (WHERE state = 'running') FROM sessions s WHERE %(all)s OR s.user_id = %(uid)s::uuid)
    AS running,
  (SELECT count(*) FILTER (WHERE state = 'hibernated') FROM sessions s WHERE %(all)s OR s.user_id = %(uid)s::uuid)
    AS hibernated,
  (SELECT count(*) FILTER (WHERE state <> 'terminated') FROM sessions s WHERE %(all)s OR s.user_id = %(uid)s::uuid)
    AS total,
  (SELECT count(*) FROM connections c
     WHERE c.disconnected_at IS NULL AND c.last_heartbeat > now() - make_interval(secs => %(window)s)
       AND (%(all)s OR c.user_id = %(uid)s::uuid)) AS connections,
  (SELECT count(*) FROM repositories) AS repositories,
  (SELECT count(*) FROM catalog_templates) AS templates
"""

# The cluster block (operators and admins): every session, the resources running sessions hold, users.
_CLUSTER_SQL = """
SELECT
  count(*) FILTER (WHERE state = 'running') AS running,
  count(*) FILTER (WHERE state = 'hibernated') AS hibernated,
  count(*) FILTER (WHERE state <> 'terminated') AS total,
  coalesce(sum(cpu_millis) FILTER (WHERE state = 'running'), 0) AS cpu_millis,
  coalesce(sum(memory_bytes) FILTER (WHERE state = 'running'), 0) AS memory_bytes,
  (SELECT count(*) FROM users) AS users,
  (SELECT count(*) FROM users WHERE active) AS active_users
FROM sessions
"""


def platform_summary(caller: Principal) -> dict[str, Any]:
    from streamspace.config import settings
    from streamspace.db import fetch_one

    everything = caller.role in ("operator", "admin")
    row = fetch_one(_SUMMARY_SQL, {"all": everything, "uid": caller.user_id,
                                   "window": settings().heartbeat_window_seconds}) or {}
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


def dead_letter_counts() -> dict[str, int]:
    from streamspace.dead_letters.service import counts

    return counts()


def cluster_summary() -> dict[str, Any]:
    """Nodes (from the cluster), sessions and the resources running sessions hold (from the index),
    and users. When the cluster does not answer, `nodes` is null with the reason: the rest still counts."""
    from streamspace import kube
    from streamspace.cluster_admin import cpu_millicores, memory_bytes
    from streamspace.config import settings
    from streamspace.db import fetch_one
    from streamspace.domain.quantity import format_cpu, format_memory
    from streamspace.sessions import warm_store

    row = fetch_one(_CLUSTER_SQL) or {}
    nodes: dict[str, Any] | None = None
    nodes_error = None
    try:
        items = kube.list_objects("Node")
    except kube.KubeError as exc:
        nodes_error = f"the cluster did not answer: {exc.message}"
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
        "warmPools": warm_store.counters(settings().sessions_namespace),
    }
