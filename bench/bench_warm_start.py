"""Desktop start time, request to Running (issue 18): a warm claim, a cached image, a cold start.

The whole system as `make run` starts it (LocalStack: every function over real HTTP, the local
event relay, the simulated cluster), with the simulated kubelet taking SIM_IMAGE_PULL_SECONDS = 8 s
to pull an image its node lacks and SIM_START_SECONDS = 3 s to start a container. Each sample is
one user's POST /api/v1/sessions (persistentHome false) until their GET /api/v1/sessions/{id} shows
phase Running, polled every 50 ms, wall clock.

- warm: a Template with a warm pool; launches one after another (the pool is large enough).
- cached: a Template whose image the node already has; launches together (one simulated node, so
  every pod lands where the image is).
- cold: a Template per launch, each with an image the node has never pulled; launches together.

Target: a warm claim at most 2 s at p95, against 11 s or more cold.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

PULL_SECONDS = 8.0
START_SECONDS = 3.0
SAMPLES = 12
POLL_SECONDS = 0.05
CEILING = 120.0


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]

    return {"n": len(ordered), "p50_s": round(at(0.5), 2), "p95_s": round(at(0.95), 2), "max_s": round(ordered[-1], 2)}


def _user(name: str) -> tuple[str, str]:
    from bench.support import login_token
    from streamspace.db import fetch_one

    row = fetch_one("INSERT INTO users (username, email, role, password_hash) VALUES (%s, %s, 'user', 'x')"
                    " RETURNING id::text AS id", (name, f"{name}@example.com"))
    assert row is not None
    return row["id"], login_token(row["id"], name)


def _launch(base: str, token: str, template: str) -> tuple[float, dict[str, Any]]:
    """Seconds from the request to Running, and the create answer."""
    import requests

    headers = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    answer = requests.post(f"{base}/api/v1/sessions", json={"template": template, "persistentHome": False},
                           headers=headers, timeout=60)
    answer.raise_for_status()
    created = answer.json()
    deadline = started + CEILING
    while time.perf_counter() < deadline:
        session = requests.get(f"{base}/api/v1/sessions/{created['name']}", headers=headers, timeout=60).json()
        if session["status"]["phase"] == "Running":
            return time.perf_counter() - started, created
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"{created['name']} not Running within {CEILING:.0f} s")


def _together(base: str, launches: list[tuple[str, str]]) -> list[tuple[float, dict[str, Any]]]:
    results: list[Any] = [None] * len(launches)
    errors: list[BaseException] = []

    def one(i: int, token: str, template: str) -> None:
        try:
            results[i] = _launch(base, token, template)
        except BaseException as exc:  # noqa: BLE001 - reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i, token, template)) for i, (token, template) in enumerate(launches)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def _template(admin: Any, name: str, image: str, pool: int = 0) -> None:
    from streamspace.templates import service as templates

    body: dict[str, Any] = {"name": name, "displayName": name, "baseImage": image,
                            "defaultResources": {"cpu": "1", "memory": "1Gi"}, "vnc": {"enabled": True, "port": 3000}}
    if pool:
        body["warmPool"] = {"size": pool}
    templates.create_template(body, admin)


def _wait(what: str, predicate: Any) -> None:
    deadline = time.monotonic() + CEILING
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {CEILING:.0f} s: {what}")
        time.sleep(0.1)


def run() -> dict[str, Any]:
    from bench.support import benchmark_database
    from streamspace import kube
    from streamspace.auth.principal import Principal
    from streamspace.config import environment
    from streamspace.domain.warm import WARM_APP, pod_ready
    from streamspace.local.runner import LocalStack
    from streamspace.settings.service import WARM_POOL_BUDGET, update_platform_settings

    os.environ["SIM_IMAGE_PULL_SECONDS"] = str(PULL_SECONDS)
    os.environ["SIM_START_SECONDS"] = str(START_SECONDS)
    benchmark_database()
    # One node, so "cached" means the image is on the node the pod lands on.
    stack = LocalStack(cluster="sim", kubelet_delay=0.1, sim_nodes=1, sim_node_cpu="64", sim_node_memory="256Gi",
                       announce=lambda line: None).start()
    try:
        base, ns = stack.api_url, environment().sessions_namespace
        admin_id, _ = _user("bench-admin")
        admin = Principal(admin_id, "bench-admin", "admin", (), None)
        update_platform_settings({WARM_POOL_BUDGET: 100}, admin)

        # warm: a pool as large as the samples, filled (pulled once, then started) before timing.
        _template(admin, "warm", "example.org/bench/warm:1", pool=SAMPLES)
        _wait("the warm pool filled", lambda: sum(pod_ready(p) for p in kube.list_objects(
            "Pod", ns, label_selector=f"app.kubernetes.io/name={WARM_APP}")) >= SAMPLES)
        warm = []
        for i in range(SAMPLES):
            _, token = _user(f"warm-{i}")
            seconds, created = _launch(base, token, "warm")
            assert created["warmStart"]["claimed"], created["warmStart"]
            warm.append(seconds)

        # cached: the first session pulls the image (untimed), then SAMPLES start together.
        _template(admin, "cached", "example.org/bench/cached:1")
        _, token = _user("cached-first")
        _launch(base, token, "cached")
        cached = _together(base, [(_user(f"cached-{i}")[1], "cached") for i in range(SAMPLES)])

        # cold: every launch its own image, never pulled.
        for i in range(SAMPLES):
            _template(admin, f"cold-{i}", f"example.org/bench/cold-{i}:1")
        cold = _together(base, [(_user(f"cold-u{i}")[1], f"cold-{i}") for i in range(SAMPLES)])
    finally:
        stack.stop()
    return {
        "simulated": {"image_pull_s": PULL_SECONDS, "container_start_s": START_SECONDS},
        "request_to_running": {"warm": _percentiles(warm), "cached": _percentiles([s for s, _ in cached]),
                               "cold": _percentiles([s for s, _ in cold])},
        "target": "warm p95 <= 2 s; cold >= 11 s",
    }
