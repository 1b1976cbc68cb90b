"""Where `make run`'s CPU goes with many sessions: in the background, or per request.

    python -m bench.make_run_cpu [--users 200] [--phase 30] [--rate 50] [--profile-to FOLDER]

Starts what `make run` runs (as bench.loadtest does), makes `--users` users with one session and one
live connection each, then measures the `make run` process's CPU (user + system) phase by phase:
with nothing asked of it (the simulated cluster, the relay, the schedules, idle), then under
`--rate` heartbeats per second, then the same rate of session lists. A phase's CPU minus the idle
phase's is the requests' own cost; the idle phase is what the process spends on its own. The CPU
clock does not count the time other processes hold a core, so on a shared machine this is steadier
than any latency. With `--profile-to`, each phase is also sampled by `py-spy record --gil --threads`
(the thread holding the GIL: what the Python side spends its time on) into FOLDER/<phase>.raw.

The users' passwords are hashed with the `test` profile (the load test measures logins; this does not).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.loadtest import PASSWORD, _wait_for, start_system, stop_system
from bench.support import ROOT, tree_cpu_seconds
from streamspace.local.server import unused_port

TEMPLATE = {"name": "firefox", "displayName": "Firefox", "baseImage": "lscr.io/linuxserver/firefox:latest",
            "defaultResources": {"cpu": "100m", "memory": "128Mi"}, "vnc": {"enabled": True, "port": 3000}}


def _drive(rate: float, seconds: float, ask: Callable[[int], int]) -> int:
    """Call ask(i) about `rate` times a second for `seconds` from 8 threads; the requests made."""
    end = time.monotonic() + seconds
    made = [0] * 8

    def worker(k: int) -> None:
        due, i = time.monotonic(), k
        while due < end:
            time.sleep(max(0.0, due - time.monotonic()))
            made[k] += ask(i)
            i += 8
            due += 8 / rate

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(made)


def run(users: int = 200, phase: float = 30.0, rate: float = 50.0,
        profile_to: Path | None = None) -> list[dict[str, Any]]:
    import requests

    data_dir = Path(tempfile.mkdtemp(prefix="ssc-", dir="/tmp"))
    port = unused_port()
    api = f"http://127.0.0.1:{port}"
    system, _log = start_system(data_dir, port, users, PASSWORD_HASH_PROFILE="test")
    report: list[dict[str, Any]] = []

    def measure(name: str, seconds: float, work: Callable[[float], int] | None = None) -> None:
        spy = None
        if profile_to is not None and seconds >= 1:
            spy = subprocess.Popen([str(ROOT / ".venv/bin/py-spy"), "record", "-p", str(system.pid), "-d",
                                    str(int(seconds)), "-r", "50", "--threads", "--gil", "-f", "raw",
                                    "-o", str(profile_to / f"{name}.raw")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu, started = tree_cpu_seconds(system.pid), time.monotonic()
        requests_made = work(seconds) if work is not None else (time.sleep(seconds) or 0)
        if spy is not None:
            spy.wait()
        cpu, wall = tree_cpu_seconds(system.pid) - cpu, time.monotonic() - started
        row = {"phase": name, "seconds": round(wall, 1), "cpu_seconds": round(cpu, 2),
               "percent_of_a_core": round(100 * cpu / wall, 1), "requests": requests_made,
               "cpu_ms_per_request": round(1000 * cpu / requests_made, 2) if requests_made else None,
               "load_average": round(os.getloadavg()[0], 1)}
        report.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    try:
        _wait_for(api, system)
        admin = requests.Session()
        token = admin.post(api + "/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}, timeout=60)
        admin.headers["Authorization"] = f"Bearer {token.json()['token']}"
        admin.post(api + "/api/v1/templates", timeout=60, json=TEMPLATE).raise_for_status()
        measure("empty", phase)
        people: list[tuple[Any, str]] = []
        for i in range(users):
            username = f"cpu{i:04d}"
            admin.post(api + "/api/v1/users", timeout=60, json={
                "username": username, "email": f"{username}@example.com", "password": PASSWORD}).raise_for_status()
            http = requests.Session()
            http.headers["X-Forwarded-For"] = f"10.{i // 250}.{i % 250}.1"
            login = http.post(api + "/api/v1/auth/login", json={"username": username, "password": PASSWORD}, timeout=60)
            http.headers["Authorization"] = f"Bearer {login.json()['token']}"
            people.append((http, ""))

        def launch(_: float) -> int:
            for i, (http, _name) in enumerate(people):
                answer = http.post(api + "/api/v1/sessions", json={"template": "firefox"}, timeout=60)
                answer.raise_for_status()
                people[i] = (http, answer.json()["name"])
            return len(people)

        measure("launch", 0, launch)
        measure("settle", 2 * phase)
        beats: list[str] = []

        def connect(_: float) -> int:
            for http, name in people:
                answer = http.get(f"{api}/api/v1/sessions/{name}/connect", timeout=60)
                answer.raise_for_status()
                beats.append(f"{api}/api/v1/sessions/{name}/heartbeat?connectionId={answer.json()['connectionId']}")
            return len(people)

        measure("idle", phase)
        measure("connect", 0, connect)  # right before the heartbeats: a connection lapses after 60 s without one
        failed: list[int] = []

        def beat(i: int) -> int:
            answer = people[i % users][0].post(beats[i % users], timeout=60)
            if not answer.ok:
                failed.append(answer.status_code)
            return 1

        def listing(i: int) -> int:
            answer = people[i % users][0].get(api + "/api/v1/sessions", timeout=60)
            if not answer.ok:
                failed.append(answer.status_code)
            return 1

        measure("heartbeats", phase, lambda seconds: _drive(rate, seconds, beat))
        measure("lists", phase, lambda seconds: _drive(rate, seconds, listing))
        measure("idle again", phase)
        if failed:
            report.append({"failed_requests": len(failed), "statuses": sorted(set(failed))})
        return report
    finally:
        stop_system(system, data_dir)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.make_run_cpu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--phase", type=float, default=30.0, help="seconds each measured phase lasts")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second in the request phases")
    parser.add_argument("--profile-to", type=Path, default=None, help="a folder for py-spy's raw GIL samples")
    options = parser.parse_args(argv)
    if options.profile_to is not None:
        options.profile_to.mkdir(parents=True, exist_ok=True)
    print(json.dumps(run(options.users, options.phase, options.rate, options.profile_to), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
