"""The metrics store: the read-only statements behind the platform summary. Each is one statement
over the indexes (sessions, connections, repositories, catalog, users), so a summary costs one
round trip however many tables it counts; nothing here writes."""

from __future__ import annotations

from typing import Any

from streamspace import kube
from streamspace.db import fetch_one

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


def platform_counts(everything: bool, user_id: str, heartbeat_window: int) -> dict[str, Any]:
    """Sessions by state and live connections (everyone's, or one user's), repositories, templates."""
    return fetch_one(_SUMMARY_SQL, {"all": everything, "uid": user_id, "window": heartbeat_window}) or {}


def cluster_counts() -> dict[str, Any]:
    """Every session by state, the cpu and memory running sessions hold, users and active users."""
    return fetch_one(_CLUSTER_SQL) or {}


def nodes() -> list[dict[str, Any]]:
    return kube.list_objects("Node")
