"""CPU per request of the measured routes, in process: each function's WSGI app (functions-framework,
Flask, our HTTP layer) called through werkzeug's test client, timed by this process's CPU clock.

The production table (`make bench`) reads the served process's CPU per request under wrk, which is
what counts; this figure leaves out gunicorn and the socket but is much steadier on a shared machine
(a CPU clock does not count the time other processes hold the core), so it is the one to iterate
on: a change to our code moves it by the same microseconds it moves the served figure.

- hello: a bare functions-framework hello world through the same client (what everyone pays);
- list: GET /api/v1/sessions?limit=50 with 50 sessions; heartbeat; session-check (forward auth).
Each is timed in REPEATS alternating runs of CALLS requests; medians and (min-max) in microseconds.
Postgres's own CPU is another process: it is given beside, as `database_us` (the CPU of the database
server's processes during the same runs, per request; 10 ms ticks, so read its median).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.support import benchmark_database, database_cpu_seconds, desktop_cookie, hello_world_source, login_token

CALLS = int(os.environ.get("BENCH_CALLS", "400"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "7"))
SESSIONS = 50


def _seed(namespace: str) -> tuple[str, str, str, str]:
    """(user id, access token, the first session's name, a live connection id of it)."""
    from streamspace.db import execute, fetch_one, transaction
    from streamspace.sessions import store

    user = fetch_one("INSERT INTO users (username, email, role, password_hash) VALUES ('bench', 'b@example.com',"
                     " 'user', 'x') RETURNING id::text AS id")
    assert user is not None
    for i in range(SESSIONS):
        execute("INSERT INTO sessions (namespace, name, user_id, username, template, state, phase, url, pod_name,"
                " cpu_millis, memory_bytes, cpu_request_millis, memory_request_bytes, tags)"
                " VALUES (%s, %s, %s, 'bench', 'firefox', 'running', 'Running', %s, %s, 2000, 4294967296,"
                " 500, 1073741824, ARRAY['bench'])",
                (namespace, f"bench-firefox-{i}", user["id"], f"https://bench-firefox-{i}.streamspace.local",
                 f"bench-firefox-{i}-pod"))
    with transaction() as conn:
        connection_id = store.open_connection(conn, namespace, "bench-firefox-0", user["id"], "bench", "127.0.0.1",
                                              "bench")
    return user["id"], login_token(user["id"], "bench"), "bench-firefox-0", connection_id


def _cpu_us(client: Any, method: str, path: str, headers: dict[str, str], calls: int) -> tuple[float, float]:
    """(this process's CPU, the database server's CPU) per request, in microseconds."""
    database = database_cpu_seconds()
    started = time.process_time()
    for _ in range(calls):
        response = client.open(path, method=method, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.get_data(as_text=True)[:200]}")
    return (time.process_time() - started) * 1e6 / calls, (database_cpu_seconds() - database) * 1e6 / calls


def run() -> dict[str, Any]:
    benchmark_database()
    from functions_framework import create_app
    from werkzeug.test import Client

    from streamspace.config import environment
    from streamspace.db import statement_count
    from streamspace.local.gateway import load_function_app

    namespace = environment().sessions_namespace
    user_id, token, session, connection_id = _seed(namespace)
    user = {"Authorization": f"Bearer {token}"}
    desktop = {"Cookie": f"streamspace_desktop={desktop_cookie(user_id, 'bench', session)}",
               "X-Forwarded-Host": f"{session}.streamspace.local"}
    hello_app = create_app(target="handle", source=str(hello_world_source(Path(tempfile.mkdtemp(prefix="ssb-")))))
    sessions = Client(load_function_app("sessions"), use_cookies=False)
    authcheck = Client(load_function_app("auth-check"), use_cookies=False)
    cases = {
        "hello": (Client(hello_app, use_cookies=False), "GET", "/", {}),
        "list": (sessions, "GET", "/api/v1/sessions?limit=50", user),
        "heartbeat": (sessions, "POST", f"/api/v1/sessions/{session}/heartbeat?connectionId={connection_id}", user),
        "session-check": (authcheck, "GET", "/api/v1/auth/session-check", desktop),
    }
    statements = {}
    for name, (client, method, path, headers) in cases.items():
        _cpu_us(client, method, path, headers, 50)  # warm: token verification, prepared statements
        before = statement_count()
        _cpu_us(client, method, path, headers, 1)
        statements[name] = statement_count() - before
    samples: dict[str, list[float]] = {name: [] for name in cases}
    database: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases)
    for repeat in range(REPEATS):
        for name in order if repeat % 2 == 0 else reversed(order):
            client, method, path, headers = cases[name]
            ours, theirs = _cpu_us(client, method, path, headers, CALLS)
            samples[name].append(ours)
            database[name].append(theirs)
    hello = statistics.median(samples["hello"])
    return {
        "calls_per_run": CALLS, "runs": REPEATS, "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpu_us_per_request": {name: {"median": round(statistics.median(s), 1), "min": round(min(s), 1),
                                      "max": round(max(s), 1), "sql": statements[name],
                                      "over_hello": round(statistics.median(s) / hello, 2),
                                      "database_us": round(statistics.median(database[name]), 1)}
                               for name, s in samples.items()},
    }
