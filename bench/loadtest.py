"""A load test that stops by itself: simulated users against `make run` for a bounded time.

    python -m bench.loadtest [--users 200] [--seconds 300] [--ramp 120] [--heartbeat-interval 30] [--list-every 2]
    make loadtest                 # the issue's rate: a heartbeat every 30 s, as a browser sends it
    make loadtest-stress          # 10x compressed: a heartbeat every 3 s (200 users send 2,000's)

It starts the same command `make run` runs (`python -m streamspace run`, a fresh data folder, the
simulated cluster), creates the users and a Template through the API as an admin, then each
simulated user, in its own thread, logs in, launches a session, opens a connection and, until the
time is up, heartbeats and lists its sessions. Then it stops everything and reports: errors (any
non-2xx answer or failed request; there must be none), p50/p95/p99 latency per route, the
database's connection count (sampled every second from pg_stat_activity: client backends of the
system's database, excluding this sampler's own), the CPU the `make run` process and the database
spent while the users ran, and the machine's load average before and after.

A browser heartbeats every 30 s, which is the default. `--heartbeat-interval 3` compresses time
tenfold and the report says so. Users start spread over the first `--ramp` seconds (120 by
default), as logins are in the morning: a login is deliberately expensive (argon2id), and 200 of
them within seconds on 2 cores queue for minutes, which is a capacity plan for login storms, not
the steady state measured here.
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

from bench.support import ROOT, postmaster_pid, tree_cpu_seconds
from streamspace.local.server import unused_port

PASSWORD = "load-test-password-1"  # noqa: S105 - a throwaway local system
BROWSER_HEARTBEAT_SECONDS = 30.0  # what a client sends while it shows a session (docs/walkthrough.md)


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []

    def call(self, session: Any, route: str, method: str, url: str, **kw: Any) -> Any:
        """The response (a non-2xx one is recorded as an error), or None when the request failed."""
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
        return response

    def error_kinds(self) -> dict[str, int]:
        """How many errors of each kind: the route and the status, or the exception's name."""
        kinds: dict[str, int] = defaultdict(int)
        for error in self.errors:
            route, _, what = error.partition(": ")
            kinds[f"{route}: {what.split('(')[0].split(' ')[0]}"] += 1
        return dict(sorted(kinds.items()))


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
    from streamspace.db import connect
    from streamspace.db.embedded import start_embedded, with_database

    url = with_database(start_embedded(data_dir, cleanup_mode=None), "streamspace")
    with connect(url) as conn:
        while not stop.is_set():
            row = conn.execute("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()"
                               " AND backend_type = 'client backend' AND pid <> pg_backend_pid()").fetchone()
            samples.append(int(row["n"]) if row else 0)
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
    if login is None or not login.ok:
        return
    http.headers["Authorization"] = f"Bearer {login.json()['token']}"
    launched = recorder.call(http, "POST /api/v1/sessions", "POST", api + "/api/v1/sessions",
                             json={"template": "firefox"})
    if launched is None or not launched.ok:
        return
    name = launched.json()["name"]

    def connect() -> str | None:
        connected = recorder.call(http, "GET /api/v1/sessions/{id}/connect", "GET",
                                  f"{api}/api/v1/sessions/{name}/connect")
        if connected is None or not connected.ok:
            return None
        return f"{api}/api/v1/sessions/{name}/heartbeat?connectionId={connected.json()['connectionId']}"

    beat = connect()
    if beat is None:
        return
    beats = 0
    next_beat = time.monotonic() + random.uniform(0, heartbeat_interval)  # noqa: S311 - spread, not secrecy
    while next_beat < end_at:
        time.sleep(max(0.0, next_beat - time.monotonic()))
        answered = recorder.call(http, "POST /api/v1/sessions/{id}/heartbeat", "POST", beat)
        if answered is not None and answered.status_code == 404:
            # As the answer says: the connection lapsed (a heartbeat came too late), so connect again.
            # The 404 stays counted; the user goes on instead of failing every later heartbeat too.
            beat = connect() or beat
        beats += 1
        if beats % list_every == 0:
            recorder.call(http, "GET /api/v1/sessions", "GET", api + "/api/v1/sessions")
        next_beat += heartbeat_interval
    with recorder.lock:
        counts["users_completed"] += 1


def run(users: int = 200, seconds: float = 300, heartbeat_interval: float = 30.0, list_every: int = 2,
        ramp: float = 120.0) -> dict[str, Any]:
    import requests

    data_dir = Path(tempfile.mkdtemp(prefix="ssl-", dir="/tmp"))
    port = unused_port()
    api = f"http://127.0.0.1:{port}"
    system, log_path = start_system(data_dir, port, users)
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
        load_before = [round(x, 2) for x in os.getloadavg()]
        postmaster = postmaster_pid(data_dir)
        system_cpu, database_cpu = tree_cpu_seconds(system.pid), tree_cpu_seconds(postmaster)
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
        system_cpu = tree_cpu_seconds(system.pid) - system_cpu
        database_cpu = tree_cpu_seconds(postmaster) - database_cpu
        stop.set()
        sampler.join(timeout=10)
        routes = {
            route: {"requests": len(values), "p50_ms": round(_percentile(values, 0.5) * 1000, 1),
                    "p95_ms": round(_percentile(values, 0.95) * 1000, 1),
                    "p99_ms": round(_percentile(values, 0.99) * 1000, 1)}
            for route, values in sorted(recorder.latencies.items())
        }
        requests_made = sum(len(v) for v in recorder.latencies.values())
        return {
            "users": users, "seconds": round(elapsed, 1), "ramp_seconds": ramp,
            "heartbeat_interval_seconds": heartbeat_interval,
            "time_compression": "none: a browser's rate" if heartbeat_interval == BROWSER_HEARTBEAT_SECONDS else
                                f"heartbeats every {heartbeat_interval:g} s instead of {BROWSER_HEARTBEAT_SECONDS:g} s"
                                f" ({BROWSER_HEARTBEAT_SECONDS / heartbeat_interval:g}x the real rate)",
            "list_every_n_heartbeats": list_every,
            "users_completed": counts["users_completed"],
            "requests": requests_made, "requests_per_second": round(requests_made / elapsed, 1),
            "errors": len(recorder.errors), "error_kinds": recorder.error_kinds(),
            "first_errors": recorder.errors[:10],
            "routes": routes,
            "db_connections": {"max": max(samples, default=0), "median": sorted(samples)[len(samples) // 2]
                               if samples else 0, "samples": len(samples)},
            # CPU while the users ran (user + system): `make run`'s one process, and the embedded
            # Postgres (postmaster and backends). Per request, it is what one process can carry.
            "cpu_seconds": {"make_run": round(system_cpu, 1), "database": round(database_cpu, 1),
                            "make_run_percent_of_a_core": round(100 * system_cpu / elapsed, 1),
                            "make_run_ms_per_request": round(1000 * system_cpu / max(1, requests_made), 2)},
            "load_average_before": load_before,
            "make_run_log": str(log_path),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
    finally:
        stop.set()
        stop_system(system, data_dir)


def start_system(data_dir: Path, port: int, users: int, **settings: str) -> tuple[subprocess.Popen[bytes], Path]:
    """The command `make run` runs, on `port` with its data in `data_dir` and a simulated cluster with
    nodes enough for every user's desktop (8 of the default 1-cpu desktops fit on one). Its output
    goes to a log file beside the data folder (returned), never to an unread pipe: a full pipe would
    stop every thread of the system that logs."""
    # The load generator stands in for the ingress: it is the trusted proxy that reports each user's address.
    env = {**os.environ, "STREAMSPACE_DATA_DIR": str(data_dir), "STREAMSPACE_CLUSTER": "sim",
           "ADMIN_USERNAME": "admin", "ADMIN_PASSWORD": PASSWORD, "LOG_LEVEL": "WARNING",
           "TRUSTED_PROXIES": "127.0.0.1/32", **settings}
    env.pop("DATABASE_URL", None)
    env.pop("KUBECONFIG", None)
    log_path = data_dir.with_name(data_dir.name + "-make-run.log")
    with log_path.open("wb") as log:
        system = subprocess.Popen([sys.executable, "-m", "streamspace", "run", "--port", str(port),
                                   "--sim-nodes", str(users // 8 + 2)], cwd=ROOT, env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
    return system, log_path


def stop_system(system: subprocess.Popen[bytes], data_dir: Path) -> None:
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
    pid = postmaster_pid(data_dir)
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
    parser.add_argument("--seconds", type=float, default=300, help="how long the users run (then it stops)")
    parser.add_argument("--heartbeat-interval", type=float, default=BROWSER_HEARTBEAT_SECONDS,
                        help="seconds between a user's heartbeats (a browser's 30 by default; 3 compresses time 10x)")
    parser.add_argument("--list-every", type=int, default=2, help="a user lists its sessions every N heartbeats")
    parser.add_argument("--ramp", type=float, default=120.0, help="seconds over which the users start")
    options = parser.parse_args(argv)
    result = run(options.users, options.seconds, options.heartbeat_interval, options.list_every, options.ramp)
    print(json.dumps(result, indent=2))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
