"""A load test that stops by itself: simulated users against `make run` for a bounded time.

    python -m bench.loadtest [--users 200] [--seconds 180] [--ramp 120] [--heartbeat-interval 3] [--list-every 2]
    make loadtest LOADTEST_ARGS="--users 200 --seconds 180"

It starts the same command `make run` runs (`python -m streamspace run`, a fresh data folder, the
simulated cluster), creates the users and a Template through the API as an admin, then each
simulated user, in its own thread, logs in, launches a session, opens a connection and, until the
time is up, heartbeats and lists its sessions. Then it stops everything and reports: errors (any
non-2xx answer or failed request; there must be none), p50/p95/p99 latency per route, and the
database's connection count (sampled every second from pg_stat_activity: client backends of the
system's database, excluding this sampler's own).

Time is compressed, and the report says so: a browser heartbeats every 30 s; here every
`--heartbeat-interval` seconds (3 by default), so 200 users send what 2,000 would at the real
pace. Users start spread over the first `--ramp` seconds (120 by default), as logins are in the
morning: a login is deliberately expensive (argon2id), and 200 of them within seconds on 2 cores
queue for minutes, which is a capacity plan for login storms, not the steady state measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.support import ROOT
from streamspace.local.server import unused_port

PASSWORD = "load-test-password-1"  # noqa: S105 - a throwaway local system


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []

    def call(self, session: Any, route: str, method: str, url: str, **kw: Any) -> Any:
        started = time.perf_counter()
        try:
            response = session.request(method, url, timeout=60, **kw)
        except Exception as exc:  # noqa: BLE001 - a failed request is an error to report, not a crash
            with self.lock:
                self.errors.append(f"{route}: {exc!r}")
            return None
        elapsed = time.perf_counter() - started
        with self.lock:
            self.latencies[route].append(elapsed)
            if not 200 <= response.status_code < 300:
                self.errors.append(f"{route}: {response.status_code} {response.text[:200]}")
                return None
        return response


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the system exited with {process.returncode}")
        try:
            if requests.get(url + "/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the system did not answer {url}/health within {timeout} s")


def _connection_sampler(data_dir: Path, stop: threading.Event, samples: list[int]) -> None:
    import psycopg

    from streamspace.db.embedded import start_embedded, with_database

    url = with_database(start_embedded(data_dir, cleanup_mode=None), "streamspace")
    with psycopg.connect(url, autocommit=True) as conn:
        while not stop.is_set():
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                               " AND backend_type = 'client backend' AND pid <> pg_backend_pid()").fetchone()
            samples.append(int(row[0]) if row else 0)
            stop.wait(1.0)


def _user_flow(api: str, username: str, address: str, recorder: Recorder, start_at: float, end_at: float,
               heartbeat_interval: float, list_every: int, counts: dict[str, int]) -> None:
    import requests

    http = requests.Session()
    # Each user comes from its own address, as the ingress reports it: login limits count per address.
    http.headers["X-Forwarded-For"] = address
    time.sleep(max(0.0, start_at - time.monotonic()))
    login = recorder.call(http, "POST /api/v1/auth/login", "POST", api + "/api/v1/auth/login",
                          json={"username": username, "password": PASSWORD})
    if login is None:
        return
    http.headers["Authorization"] = f"Bearer {login.json()['token']}"
    launched = recorder.call(http, "POST /api/v1/sessions", "POST", api + "/api/v1/sessions",
                             json={"template": "firefox"})
    if launched is None:
        return
    name = launched.json()["name"]
    connected = recorder.call(http, "GET /api/v1/sessions/{id}/connect", "GET",
                              f"{api}/api/v1/sessions/{name}/connect")
    if connected is None:
        return
    beat = f"{api}/api/v1/sessions/{name}/heartbeat?connectionId={connected.json()['connectionId']}"
    beats = 0
    next_beat = time.monotonic() + random.uniform(0, heartbeat_interval)  # noqa: S311 - spread, not secrecy
    while next_beat < end_at:
        time.sleep(max(0.0, next_beat - time.monotonic()))
        recorder.call(http, "POST /api/v1/sessions/{id}/heartbeat", "POST", beat)
        beats += 1
        if beats % list_every == 0:
            recorder.call(http, "GET /api/v1/sessions", "GET", api + "/api/v1/sessions")
        next_beat += heartbeat_interval
    with recorder.lock:
        counts["users_completed"] += 1


def run(users: int = 200, seconds: float = 180, heartbeat_interval: float = 3.0, list_every: int = 2,
        ramp: float = 120.0) -> dict[str, Any]:
    import requests

    data_dir = Path(tempfile.mkdtemp(prefix="ssl-", dir="/tmp"))
    port = unused_port()
    api = f"http://127.0.0.1:{port}"
    # The load generator stands in for the ingress: it is the trusted proxy that reports each user's address.
    env = {**os.environ, "STREAMSPACE_DATA_DIR": str(data_dir), "STREAMSPACE_CLUSTER": "sim",
           "ADMIN_USERNAME": "admin", "ADMIN_PASSWORD": PASSWORD, "LOG_LEVEL": "WARNING",
           "TRUSTED_PROXIES": "127.0.0.1/32"}
    env.pop("DATABASE_URL", None)
    env.pop("KUBECONFIG", None)
    # The command `make run` runs, with a port of its own.
    # Simulated nodes enough for every user's desktop (8 of the default 1-cpu desktops fit on one).
    system = subprocess.Popen([sys.executable, "-m", "streamspace", "run", "--port", str(port),
                               "--sim-nodes", str(users // 8 + 2)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stop = threading.Event()
    samples: list[int] = []
    try:
        _wait_for(api, system)
        admin = requests.Session()
        token = admin.post(api + "/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}, timeout=60)
        token.raise_for_status()
        admin.headers["Authorization"] = f"Bearer {token.json()['token']}"
        admin.post(api + "/api/v1/templates", timeout=60, json={
            "name": "firefox", "displayName": "Firefox", "baseImage": "lscr.io/linuxserver/firefox:latest",
            "defaultResources": {"cpu": "100m", "memory": "128Mi"}, "vnc": {"enabled": True, "port": 3000},
        }).raise_for_status()
        names = [f"load{i:04d}" for i in range(users)]
        for username in names:
            admin.post(api + "/api/v1/users", timeout=60, json={
                "username": username, "email": f"{username}@example.com", "password": PASSWORD,
            }).raise_for_status()
        sampler = threading.Thread(target=_connection_sampler, args=(data_dir, stop, samples), daemon=True)
        sampler.start()
        recorder = Recorder()
        counts = {"users_completed": 0}
        began = time.monotonic()
        end_at = began + seconds
        threads = [threading.Thread(target=_user_flow, daemon=True,
                                    args=(api, username, f"10.{i // 250}.{i % 250}.1", recorder,
                                          began + ramp * i / users, end_at,
                                          heartbeat_interval, list_every, counts))
                   for i, username in enumerate(names)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(1.0, end_at - time.monotonic() + 120))
        elapsed = time.monotonic() - began
        stop.set()
        sampler.join(timeout=10)
        routes = {
            route: {"requests": len(values), "p50_ms": round(_percentile(values, 0.5) * 1000, 1),
                    "p95_ms": round(_percentile(values, 0.95) * 1000, 1),
                    "p99_ms": round(_percentile(values, 0.99) * 1000, 1)}
            for route, values in sorted(recorder.latencies.items())
        }
        return {
            "users": users, "seconds": round(elapsed, 1), "ramp_seconds": ramp,
            "heartbeat_interval_seconds": heartbeat_interval,
            "time_compression": f"heartbeats every {heartbeat_interval:g} s instead of 30 s"
                                f" ({30 / heartbeat_interval:g}x the real rate)",
            "list_every_n_heartbeats": list_every,
            "users_completed": counts["users_completed"],
            "requests": sum(len(v) for v in recorder.latencies.values()),
            "errors": len(recorder.errors), "first_errors": recorder.errors[:10],
            "routes": routes,
            "db_connections": {"max": max(samples, default=0), "median": sorted(samples)[len(samples) // 2]
                               if samples else 0, "samples": len(samples)},
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
    finally:
        stop.set()
        system.terminate()
        try:
            system.wait(timeout=60)
        except subprocess.TimeoutExpired:
            system.kill()
            system.wait()
        _stop_database(data_dir)


def _stop_database(data_dir: Path) -> None:
    """The embedded server can outlive `make run` (the sampler attached to it too): stop its
    postmaster (smart shutdown, then fast) and remove the throwaway data folder."""
    import shutil
    import signal

    pid_file = data_dir / "pgdata" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pid = 0
    for sig in (signal.SIGTERM, signal.SIGINT):
        if not pid:
            break
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and pid_file.exists():
            time.sleep(0.2)
        if not pid_file.exists():
            break
    shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadtest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=180, help="how long the users run (then it stops)")
    parser.add_argument("--heartbeat-interval", type=float, default=3.0,
                        help="seconds between a user's heartbeats (a browser: 30; compressed by default)")
    parser.add_argument("--list-every", type=int, default=2, help="a user lists its sessions every N heartbeats")
    parser.add_argument("--ramp", type=float, default=120.0, help="seconds over which the users start")
    options = parser.parse_args(argv)
    result = run(options.users, options.seconds, options.heartbeat_interval, options.list_every, options.ramp)
    print(json.dumps(result, indent=2))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
