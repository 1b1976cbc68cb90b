"""Idle sweep at scale: one sweep over 100,000 indexed sessions (BENCH_SWEEP_SESSIONS) of which 100 are idle.

Reports the sweep's wall time, the SQL statements it ran (statement_count()), the Kubernetes
requests it made (counted by the SIMULATED API server: one spec patch and one Event per idle
session), the time of the one find query on its own, and that query's plan (index scans only)."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.support import ROOT, benchmark_database

SESSIONS = int(os.environ.get("BENCH_SWEEP_SESSIONS", "100000"))
IDLE = 100
NS = "streamspace"


def _seed() -> None:
    from streamspace.db import connection

    # 1 in 10 of each group uses the configured default timeout (NULL), the rest their own 30m.
    with connection() as conn:
        conn.execute(
            "INSERT INTO sessions (namespace, name, username, template, state, idle_timeout_seconds,"
            " max_duration_seconds, last_activity, created_at)"
            " SELECT %s, 'bench-' || i, 'user' || (i %% 500), 'firefox', 'running',"
            "        CASE WHEN i %% 10 = 0 THEN NULL ELSE 1800 END,"
            "        CASE WHEN i %% 10 = 0 THEN NULL ELSE 28800 END,"
            "        CASE WHEN i <= %s THEN now() - interval '2 hours'"
            "             ELSE now() - (i %% 20) * interval '1 minute' END,"
            "        now() - interval '3 hours'"
            "   FROM generate_series(1, %s) AS i", (NS, IDLE, SESSIONS))
        conn.execute("ANALYZE sessions")


def _plan(params: dict) -> list[str]:
    import json

    from streamspace.db import fetch_one
    from streamspace.sessions.index_store import DUE_SQL

    row = fetch_one("EXPLAIN (FORMAT JSON) " + DUE_SQL, params)
    assert row is not None
    plan = row["QUERY PLAN"]
    if isinstance(plan, str):
        plan = json.loads(plan)
    nodes: list[str] = []

    def walk(node: dict) -> None:
        if "Relation Name" in node or "Index Name" in node:
            nodes.append(f"{node['Node Type']}({node.get('Index Name') or node.get('Relation Name')})")
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return nodes


def run() -> dict:
    benchmark_database()
    from streamspace import kube
    from streamspace.db import fetch_all, statement_count
    from streamspace.reconcile.sweep import MAX_PER_TICK, run_idle_sweep
    from streamspace.sessions.index_store import DUE_SQL
    from streamspace.settings.effective import load_config
    from streamspace.sim import SimCluster
    from streamspace.sim.scheduler import NodeSpec

    # One node with room for every session: the bench measures us, not the simulated capacity.
    cluster = SimCluster(crd_paths=sorted((ROOT / "crds").glob("*.yaml")), kubelet_delay=0.0,
                         nodes=[NodeSpec("bench-node", cpu="10000", memory="100Ti", pods=100000)])
    cluster.start()
    os.environ["KUBECONFIG"] = cluster.write_kubeconfig(Path(tempfile.mkdtemp(prefix="ssb-kube-")) / "config")
    kube.reset_client()
    try:
        _seed()
        for i in range(1, IDLE + 1):  # only the idle ones are touched on the cluster
            kube.create({"apiVersion": "stream.space/v1alpha1", "kind": "Session",
                         "metadata": {"name": f"bench-{i}", "namespace": NS},
                         "spec": {"user": f"user{i % 500}", "template": "firefox"}})
        config = load_config()
        params = {"auto": True, "idle": config.default_idle_timeout_seconds,
                  "max": config.default_max_duration_seconds, "limit": MAX_PER_TICK}
        find_ms = []
        for _ in range(20):
            started = time.perf_counter()
            due = fetch_all(DUE_SQL, params)
            find_ms.append((time.perf_counter() - started) * 1000)
        plan = _plan(params)

        cluster.clear_requests()
        statements = statement_count()
        started = time.perf_counter()
        result = run_idle_sweep()
        elapsed = time.perf_counter() - started
        statements = statement_count() - statements
        methods = Counter(r.method for r in cluster.requests)

        cluster.clear_requests()
        again = statement_count()
        started = time.perf_counter()
        second = run_idle_sweep()
        idle_tick_ms = (time.perf_counter() - started) * 1000
        return {
            "indexed_sessions": SESSIONS,
            "idle_sessions": IDLE,
            "due_found": len(due),
            "hibernated": len(result.hibernated),
            "sweep_seconds": round(elapsed, 3),
            "per_idle_session_ms": round(elapsed * 1000 / max(1, len(result.hibernated)), 2),
            "sql_statements": statements,
            "sql_statements_note": ("config 1 + find 1 + claim 1"
                                    " + the audit rows of all transitions in one multi-row INSERT"),
            "kubernetes_requests": sum(methods.values()),
            "kubernetes_requests_by_method": dict(methods),
            "find_query_ms_median": round(statistics.median(find_ms), 2),
            "find_query_plan": plan,
            "next_tick": {"changed": len(second.hibernated), "ms": round(idle_tick_ms, 2),
                          "sql_statements": statement_count() - again,
                          "kubernetes_requests": len(cluster.requests)},
        }
    finally:
        kube.reset_client()
        cluster.stop()
