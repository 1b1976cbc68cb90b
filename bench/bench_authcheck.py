"""The ingress forward-auth check (auth-check), in microseconds (medians and p99):

- check: `authcheck.check` as the route runs it: the cookie's digest plus the ONE query
  (the session host's grant, its user and login family, the session index row, the ingress domain);
- query: that query alone; own_work = check - query, the part that is ours (target: well under 1 ms);
- in_process: a whole GET /api/v1/auth/session-check through the function's WSGI app (functions-
  framework, Flask, our Api layer) without a socket;
- http: the same over real HTTP on a local server (keep-alive), the figure an ingress sees.

Self-contained: an embedded PostgreSQL, migrated, one user, one session row and its desktop grant
(a ticket redeemed). No Kubernetes.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.support import bench_user_and_session, benchmark_database, desktop_cookie, median_of, timed_us

CALLS = 3000
HTTP_CALLS = 500


def _figures(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_us": round(median_of(samples), 1), "p99_us": round(ordered[int(len(ordered) * 0.99)], 1),
            "mean_us": round(statistics.fmean(samples), 1)}


def run() -> dict[str, Any]:
    benchmark_database()
    import requests
    from werkzeug.datastructures import Headers
    from werkzeug.test import Client

    from streamspace.config import environment
    from streamspace.db import statement_count
    from streamspace.desktop import store
    from streamspace.desktop.access import digest
    from streamspace.local.gateway import load_function_app
    from streamspace.local.server import BackgroundServer
    from streamspace.reconcile.authcheck import check

    user = {"id": bench_user_and_session()}
    namespace = environment().sessions_namespace
    grant = desktop_cookie(user["id"], "bench", "bench-firefox-1")
    headers = Headers({"X-Forwarded-Host": "bench-firefox-1.streamspace.local",
                       "Cookie": f"streamspace_desktop={grant}"})
    cookies = {"streamspace_desktop": grant}

    before = statement_count()
    admitted = check(headers, cookies)
    assert admitted is not None and admitted.username == "bench"
    statements_per_check = statement_count() - before

    checks = timed_us(lambda: check(headers, cookies), CALLS, warmup=50)
    queries = timed_us(lambda: store.grant_for_session(digest(grant), namespace, "bench-firefox-1"), CALLS, warmup=50)
    own = median_of(checks) - median_of(queries)

    client = Client(load_function_app("auth-check"), use_cookies=False)  # the Cookie header as given

    def in_process() -> None:
        response = client.get("/api/v1/auth/session-check", headers=headers)
        assert response.status_code == 200
    wsgi = timed_us(in_process, CALLS, warmup=50)

    server = BackgroundServer(load_function_app("auth-check")).start()
    http = requests.Session()
    try:

        def over_http() -> None:
            response = http.get(f"{server.url}/api/v1/auth/session-check", headers=dict(headers), timeout=5)
            assert response.status_code == 200
        real = timed_us(over_http, HTTP_CALLS, warmup=50)
    finally:
        server.stop()
    return {
        "sql_statements_per_check": statements_per_check,
        "check": _figures(checks),
        "query": _figures(queries),
        "own_work_median_us": round(own, 1),
        "in_process_request": _figures(wsgi),
        "in_process_own_work_median_us": round(median_of(wsgi) - median_of(queries), 1),
        "http_request": _figures(real),
        "target": "own work well under 1000 us",
    }
