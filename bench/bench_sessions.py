"""Warm throughput of the sessions function's two busiest routes, as ratios to a bare
functions-framework hello world measured in the same run.

- GET /api/v1/sessions with 50 sessions in the index (authenticated, one page of 50).
- POST /api/v1/sessions/{id}/heartbeat?connectionId=... (the hot path).

Both apps are served by the same threaded WSGI server (streamspace.local.server.BackgroundServer)
and driven by the same sequential keep-alive client loop; rounds alternate between the apps and
the median of each is kept. The simulated Kubernetes API server only serves the setup (create,
connect): neither measured route calls Kubernetes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.support import ROOT, benchmark_database, hello_world_source, median_of, requests_per_second

SESSIONS = 50
ROUNDS = 5
SECONDS = 1.5
TARGETS = {"list": 0.5, "heartbeat": 0.6}


def _setup_cluster(tmp: Path) -> Any:
    from streamspace import kube
    from streamspace.sim import SimCluster

    cluster = SimCluster(crd_paths=sorted((ROOT / "crds").glob("*.yaml")), kubelet_delay=0.0)
    cluster.start()
    os.environ["KUBECONFIG"] = cluster.write_kubeconfig(tmp / "kubeconfig")
    kube.reset_client()
    return cluster


def _user(username: str) -> tuple[str, str]:
    from streamspace.auth.tokens import issue_access_token
    from streamspace.db import execute, fetch_one

    row = fetch_one("INSERT INTO users (username, email, role, password_hash) VALUES (%s, %s, 'user', 'unused')"
                    " RETURNING id::text AS id", (username, f"{username}@example.com"))
    assert row is not None
    execute("INSERT INTO user_quotas (user_id, max_sessions, max_cpu_millis, max_memory_bytes, max_storage_bytes)"
            " VALUES (%s, 1000, 1000000, 1099511627776, 1099511627776)", (row["id"],))
    token, _ = issue_access_token(user_id=row["id"], username=username, role="user", groups=[], family_id=None)
    return row["id"], token


def run() -> dict[str, Any]:
    import requests
    from functions_framework import create_app

    from streamspace import kube
    from streamspace.config import settings
    from streamspace.local.gateway import load_function_app
    from streamspace.local.server import BackgroundServer

    tmp = Path(tempfile.mkdtemp(prefix="ssb-sessions-"))
    benchmark_database()
    cluster = _setup_cluster(tmp)
    namespace = settings().namespace
    hello = BackgroundServer(create_app(target="handle", source=str(hello_world_source(tmp)))).start()
    sessions = BackgroundServer(load_function_app("sessions")).start()
    try:
        kube.create({"apiVersion": "stream.space/v1alpha1", "kind": "Template",
                     "metadata": {"name": "firefox", "namespace": namespace},
                     "spec": {"displayName": "Firefox", "baseImage": "lscr.io/linuxserver/firefox:latest",
                              "defaultResources": {"cpu": "100m", "memory": "128Mi"},
                              "vnc": {"enabled": True, "port": 3000}}})
        _, token = _user("bench")
        client = requests.Session()
        client.headers["Authorization"] = f"Bearer {token}"
        names = []
        for _ in range(SESSIONS):
            response = client.post(sessions.url + "/api/v1/sessions", json={"template": "firefox"}, timeout=30)
            response.raise_for_status()
            names.append(response.json()["name"])
        connection = client.get(f"{sessions.url}/api/v1/sessions/{names[0]}/connect", timeout=30).json()
        list_url = sessions.url + "/api/v1/sessions?limit=50"
        beat_url = f"{sessions.url}/api/v1/sessions/{names[0]}/heartbeat?connectionId={connection['connectionId']}"
        hello_url = hello.url + "/"
        assert len(client.get(list_url, timeout=30).json()["sessions"]) == SESSIONS
        assert client.post(beat_url, timeout=30).json() == {"status": "ok"}

        def hello_call() -> None:
            client.get(hello_url, timeout=30).raise_for_status()

        def list_call() -> None:
            client.get(list_url, timeout=30).raise_for_status()

        def beat_call() -> None:
            client.post(beat_url, timeout=30).raise_for_status()

        samples: dict[str, list[float]] = {"hello": [], "list": [], "heartbeat": []}
        for _ in range(ROUNDS):
            samples["hello"].append(requests_per_second(hello_call, SECONDS))
            samples["list"].append(requests_per_second(list_call, SECONDS))
            samples["heartbeat"].append(requests_per_second(beat_call, SECONDS))
        rps = {name: median_of(values) for name, values in samples.items()}
        ratios = {name: rps[name] / rps["hello"] for name in ("list", "heartbeat")}
        return {
            "hello_world_rps": round(rps["hello"], 1),
            "list_50_sessions_rps": round(rps["list"], 1),
            "heartbeat_rps": round(rps["heartbeat"], 1),
            "list_ratio": round(ratios["list"], 3),
            "heartbeat_ratio": round(ratios["heartbeat"], 3),
            "targets": TARGETS,
            "meets_targets": all(ratios[name] >= target for name, target in TARGETS.items()),
        }
    finally:
        sessions.stop()
        hello.stop()
        cluster.stop()
        kube.reset_client()
        shutil.rmtree(tmp, ignore_errors=True)
