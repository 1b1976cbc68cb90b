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
    }
