"""The metrics store: the read-only statements behind the platform summary. Each is one statement
over the indexes (sessions, connections, repositories, catalog, users), so a summary costs one
round trip however many tables it counts; nothing here writes. The sessions' and connections' parts
are the sessions store's constants, the repositories' and catalog templates' the catalog store's
(each the only code that speaks SQL to those tables)."""

from __future__ import annotations

from typing import Any

from streamspace import kube
from streamspace.catalog import store as catalog_store
from streamspace.db import fetch_one
from streamspace.sessions import store as session_store

# Sessions and live connections from the sessions store's constants, the catalog's counts from the
# catalog store's; values are always bound parameters.
_SUMMARY_SQL = (
    "SELECT " + session_store.SUMMARY_COLUMNS + ","  # noqa: S608
    "  " + catalog_store.REPOSITORY_COUNT_SUBQUERY + " AS repositories,"
    "  " + catalog_store.TEMPLATE_COUNT_SUBQUERY + " AS templates"
)

# The cluster block (operators and admins): every session, the resources running sessions hold, users.
_CLUSTER_SQL = (
    "SELECT s.*, (SELECT count(*) FROM users) AS users,"  # noqa: S608
    "       (SELECT count(*) FROM users WHERE active) AS active_users"
    "  FROM (" + session_store.CLUSTER_TOTALS_SQL + ") AS s"
)


def platform_counts(everything: bool, user_id: str, heartbeat_window: int) -> dict[str, Any]:
    """Sessions by state and live connections (everyone's, or one user's), repositories, templates."""
    return fetch_one(_SUMMARY_SQL, {"all": everything, "uid": user_id, "window": heartbeat_window}) or {}


def cluster_counts() -> dict[str, Any]:
    """Every session by state, the cpu and memory running sessions hold, users and active users."""
    return fetch_one(_CLUSTER_SQL) or {}


def nodes() -> list[dict[str, Any]]:
    return kube.list_objects("Node")
