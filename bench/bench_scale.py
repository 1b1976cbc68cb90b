"""How cost grows with the work, each function served as production serves it (bench.served):

- list: latency of GET /api/v1/sessions?limit=50 (one caller, one connection, so the figure is the
  route's own latency) with 50, 500 and 5,000 of the caller's sessions in the index;
- heartbeat: throughput (16 connections) with 1 and with 10,000 live connections in the table;
- idle sweep: one tick over 100,000 indexed sessions, 100 of them idle (bench_idle_sweep);
- session-reconcile: CloudEvents handled per second by one process (16 connections), each the
  update event of a Session already converged, next to a CloudEvent hello world in the same run.

Rows are seeded with SQL (the index as the API would have written it); the sessions that are
measured by name were launched through the API. Kubernetes is the simulated API server in this
process: session-reconcile's figure includes its reads of the cluster. Nothing asserts time.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.production_venv import production_venvs
from bench.served import CONNECTIONS, Served, hello_sources, precompile, wrk
from bench.support import ROOT, benchmark_database

NS = "streamspace"
SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def _seed_sessions(user_id: str, username: str, up_to: int, already: int) -> None:
    from streamspace.db import connection

    with connection() as conn:
        conn.execute(
            "INSERT INTO sessions (namespace, name, user_id, username, template, state, cpu_millis, memory_bytes,"
            " idle_timeout_seconds, max_duration_seconds, created_at, last_activity)"
            " SELECT %s, 'seed-' || i, %s::uuid, %s, 'firefox', 'running', 100, 134217728, 1800, 28800,"
            "        now() - i * interval '1 second', now()"
            "   FROM generate_series(%s::int, %s::int) AS i", (NS, user_id, username, already + 1, up_to))
        conn.execute("ANALYZE sessions")


def _seed_connections(user_id: str, username: str, count: int) -> None:
    from streamspace.db import connection

    with connection() as conn:
        conn.execute(
            "INSERT INTO connections (session_namespace, session_name, user_id, username)"
            " SELECT %s, 'seed-' || (1 + i %% 4999), %s::uuid, %s FROM generate_series(1, %s::int) AS i",
            (NS, user_id, username, count))
        conn.execute("ANALYZE connections")


def _median_load(url: str, rounds: int, **kw: Any) -> dict[str, float]:
    runs = [wrk(url, seconds=SECONDS, **kw) for _ in range(rounds)]
    return {"rps": statistics.median(r.rps for r in runs), "p50_ms": statistics.median(r.p50_us for r in runs) / 1000,
            "p99_ms": statistics.median(r.p99_us for r in runs) / 1000}


def run() -> dict[str, Any]:
    import requests

    from bench.bench_idle_sweep import run as idle_sweep
    from bench.bench_production import _launch, _template, _user
    from streamspace import kube
    from streamspace.events.apiserver import apiserver_event
    from streamspace.sim import SimCluster
    from streamspace.sim.scheduler import NodeSpec

    tmp = Path(tempfile.mkdtemp(prefix="ssb-scale-"))
    url = benchmark_database()
    # One node with room for every session: the bench measures us, not the simulated capacity.
    cluster = SimCluster(crd_paths=sorted((ROOT / "crds").glob("*.yaml")), kubelet_delay=0.0,
                         nodes=[NodeSpec("bench-node", cpu="10000", memory="100Ti", pods=100000)])
    cluster.start()
    os.environ["KUBECONFIG"] = cluster.write_kubeconfig(tmp / "kubeconfig")
    kube.reset_client()
    precompile(ROOT / "functions", ROOT / "shared")
    venvs = production_venvs(["sessions", "session-reconcile"])  # served as make bench serves them
    env = {**os.environ, "DATABASE_URL": url, "PYTHONDONTWRITEBYTECODE": "1", "LOG_LEVEL": "WARNING"}
    _, hello_event = hello_sources(tmp)
    served: list[Served] = []
    result: dict[str, Any] = {"connections": CONNECTIONS, "seconds_per_run": SECONDS, "rounds": ROUNDS}
    try:
        kube.create(_template("firefox"))
        user_id, token = _user("scale", "user")
        auth = {"Authorization": f"Bearer {token}"}
        sessions = Served(ROOT / "functions" / "sessions" / "main.py", env, venv=venvs["sessions"]).start()
        served.append(sessions)
        launched = _launch(sessions.url, token, 1)
        connection = requests.get(f"{sessions.url}/api/v1/sessions/{launched[0]}/connect", headers=auth, timeout=30)
        connection.raise_for_status()
        beat = (f"{sessions.url}/api/v1/sessions/{launched[0]}/heartbeat"
                f"?connectionId={connection.json()['connectionId']}")

        # List latency as the index grows (one connection: latency, not throughput).
        listing: dict[str, Any] = {}
        have = 1
        for size in (50, 500, 5000):
            _seed_sessions(user_id, "scale", size - 1, have - 1)
            have = size
            listing[str(size)] = _median_load(sessions.url + "/api/v1/sessions?limit=50", ROUNDS, headers=auth,
                                              connections=1, threads=1)
        base = listing["50"]["p50_ms"]
        result["list_latency_by_sessions"] = {k: {**v, "p50_vs_50": round(v["p50_ms"] / base, 2)}
                                              for k, v in listing.items()}

        # Heartbeat throughput with 1 and with 10,000 live connections in the table.
        few = _median_load(beat, ROUNDS, method="POST", headers=auth)
        _seed_connections(user_id, "scale", 10_000)
        many = _median_load(beat, ROUNDS, method="POST", headers=auth)
        result["heartbeat"] = {"one_live_connection": few, "with_10000_live_connections": many,
                               "rps_ratio": round(many["rps"] / few["rps"], 2)}

        # session-reconcile: events per second on one process, next to a CloudEvent hello world.
        reconcile = Served(ROOT / "functions" / "session-reconcile" / "main.py", env,
                           venv=venvs["session-reconcile"]).start()
        hello = Served(hello_event, env, venv=venvs["session-reconcile"]).start("/")
        served += [reconcile, hello]
        obj = kube.get("Session", launched[0], NS)
        assert obj is not None
        headers, body = apiserver_event("update", obj, "sessions")
        first = requests.post(reconcile.url + "/", headers=headers, data=body, timeout=30)
        first.raise_for_status()
        ours, bare = [], []
        for round_number in range(ROUNDS):
            pair = [lambda: wrk(reconcile.url + "/", seconds=SECONDS, method="POST", headers=headers, body=body),
                    lambda: wrk(hello.url + "/", seconds=SECONDS, method="POST", headers=headers, body=body)]
            if round_number % 2:
                pair.reverse()
            a, b = (f() for f in pair)
            o, h = (a, b) if round_number % 2 == 0 else (b, a)
            ours.append(o.rps)
            bare.append(h.rps)
        result["session_reconcile"] = {
            "events_per_second": round(statistics.median(ours), 1),
            "cloudevent_hello_world_per_second": round(statistics.median(bare), 1),
            "ratio": round(statistics.median(o / h for o, h in zip(ours, bare, strict=True)), 3),
            "event": "update of a converged Session (reads the Session and its objects, changes nothing)",
        }
    finally:
        for s in served:
            s.stop()
        kube.reset_client()
        cluster.stop()
    result["idle_sweep"] = idle_sweep()
    return result
