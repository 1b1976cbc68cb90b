"""The warm pool counters (table warm_pool_stats): the only SQL on that table."""

from __future__ import annotations

from typing import Any

from streamspace.db import execute, fetch_all


def count(namespace: str, template: str, *, claims: int = 0, misses: int = 0, recycles: int = 0) -> None:
    """Add to a Template's counters (one upsert)."""
    execute(
        "INSERT INTO warm_pool_stats (namespace, template, claims, misses, recycles) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (namespace, template) DO UPDATE SET claims = warm_pool_stats.claims + EXCLUDED.claims,"
        " misses = warm_pool_stats.misses + EXCLUDED.misses, recycles = warm_pool_stats.recycles + EXCLUDED.recycles,"
        " updated_at = now()",
        (namespace, template, claims, misses, recycles))


def counters(namespace: str) -> dict[str, dict[str, int]]:
    """template -> {claims, misses, recycles} for every Template that has counted anything."""
    rows: list[dict[str, Any]] = fetch_all(
        "SELECT template, claims, misses, recycles FROM warm_pool_stats WHERE namespace = %s", (namespace,))
    return {r["template"]: {"claims": int(r["claims"]), "misses": int(r["misses"]), "recycles": int(r["recycles"])}
            for r in rows}
