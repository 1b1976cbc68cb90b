"""Live session updates: from a change in the session index to the `sessions_update` message
received by a client, in milliseconds (p50, p95), over Server-Sent Events and over the WebSocket.

The change is an UPDATE of the index row (what a reconcile does when a session becomes Running);
the trigger NOTIFYs, the sessions function's listener wakes the stream, which reads the caller's
sessions again and sends them. Baseline, measured in the same run: one GET /api/v1/sessions over
the same HTTP server (what one poll of the old snapshot-every-5-seconds design cost, which added
on average 2.5 s of waiting on top). Target (issue 10): p95 under 1 s; the browser-side variant is
the portal's benchmark.

Self-contained: an embedded PostgreSQL, migrated, one user and one session row; the sessions
function served over real HTTP on a local server. No Kubernetes.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from typing import Any

from bench.support import bench_user_and_session, benchmark_database, login_token, median_of, timed_us

CHANGES = 100


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {"p50_ms": round(median_of(ordered), 2), "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1], 2),
            "max_ms": round(ordered[-1], 2)}


def _measure(receive: queue.Queue[tuple[float, dict[str, Any]]], change: Any) -> list[float]:
    """Latency of CHANGES changes: each waits for the message that shows it."""
    latencies = []
    for i in range(CHANGES):
        phase = f"Bench{i}"
        started = time.perf_counter()
        change(phase)
        while True:
            arrived, message = receive.get(timeout=30)
            if any(s["status"]["phase"] == phase for s in message["sessions"]):
                latencies.append((arrived - started) * 1000)
                break
    return latencies


def run() -> dict[str, Any]:
    benchmark_database()
    import requests
    import websocket

    from streamspace.config import environment, reset_environment
    from streamspace.db import execute
    from streamspace.local.gateway import load_function_app
    from streamspace.local.server import BackgroundServer

    os.environ["LIVE_STREAM_SECONDS"] = "540s"
    reset_environment()
    user = {"id": bench_user_and_session()}
    namespace = environment().sessions_namespace
    token = login_token(user["id"], "bench")

    def change(phase: str) -> None:
        execute("UPDATE sessions SET phase = %s WHERE namespace = %s AND name = 'bench-firefox-1'",
                (phase, namespace))

    server = BackgroundServer(load_function_app("sessions")).start()
    try:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token}"
        poll = timed_us(lambda: http.get(f"{server.url}/api/v1/sessions", timeout=10).raise_for_status(), 200,
                        warmup=20)

        received: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        stream = requests.get(f"{server.url}/api/v1/events/sessions", params={"token": token}, stream=True,
                              timeout=60)

        def read_sse() -> None:
            try:
                for line in stream.iter_lines(decode_unicode=True):
                    if line.startswith("data:"):
                        received.put((time.perf_counter(), json.loads(line[5:])))
            except (requests.RequestException, AttributeError):  # closed at the end of the run
                return

        threading.Thread(target=read_sse, daemon=True).start()
        received.get(timeout=30)  # the first snapshot
        sse = _measure(received, change)
        stream.close()

        ws_received: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        ws = websocket.create_connection(f"{server.url.replace('http', 'ws')}/api/v1/ws/sessions?token={token}",
                                         timeout=60)

        def read_ws() -> None:
            try:
                while True:
                    text = ws.recv()
                    ws_received.put((time.perf_counter(), json.loads(text)))
            except Exception:  # noqa: BLE001 - closed at the end of the run
                return

        threading.Thread(target=read_ws, daemon=True).start()
        ws_received.get(timeout=30)
        over_ws = _measure(ws_received, change)
        ws.close()
    finally:
        server.stop()
    poll_ms = median_of(poll) / 1000
    return {
        "changes": CHANGES,
        "sse": _percentiles(sse),
        "websocket": _percentiles(over_ws),
        "baseline_one_poll_request_p50_ms": round(poll_ms, 2),
        "sse_p50_over_one_poll_request": round(median_of(sse) / poll_ms, 2),
        "old_design_mean_wait_ms": 2500,
        "target": "p95 under 1000 ms",
    }
