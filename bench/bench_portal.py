"""The portal: cold start against hello world, page weight, and live-update latency in a real browser.

- Cold start: process start (functions-framework, the images' WORKERS/THREADS) to the first 2xx of
  an authenticated page (`/sessions`, login cookie), against the HTTP hello world to its first 2xx;
  pairs alternate which goes first; median ratio and its spread.
- Page weight: every page's HTML plus the assets it loads (CSS, script, icon), raw and gzip, as a
  first visit downloads them (later visits reuse the assets: immutable, versioned URLs).
- Live updates: Debian's chromium on a user's session page; the benchmark changes the session's
  state through the sessions service (index + cluster, as the API does) and a MutationObserver in
  the page records when the new state shows. Latency = that moment minus the moment of the change
  (one clock: same machine). p50/p95 over LIVE_ROUNDS changes.

Nothing here asserts time: it reports.
"""

from __future__ import annotations

import gzip
import os
import re
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.served import Served, first_success, hello_sources, precompile, spread
from bench.support import ROOT

COLD_ROUNDS = int(os.environ.get("BENCH_COLD_ROUNDS", "3"))
LIVE_ROUNDS = int(os.environ.get("BENCH_LIVE_ROUNDS", "20"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PASSWORD = "bench-password-1"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _cold_start(env: dict[str, str], cookie: str) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="ssbp-"))
    hello, _ = hello_sources(work)
    precompile(work, ROOT / "functions" / "portal")
    ratios, ours, base = [], [], []
    for round_number in range(COLD_ROUNDS):
        def measure(source: Path, path: str, headers: dict[str, str] | None) -> float:
            served = Served(source, env)
            try:
                return first_success(served, path, headers=headers)
            finally:
                served.stop()

        portal = ROOT / "functions" / "portal" / "main.py"
        if round_number % 2 == 0:
            b = measure(hello, "/", None)
            o = measure(portal, "/sessions", {"Cookie": cookie})
        else:
            o = measure(portal, "/sessions", {"Cookie": cookie})
            b = measure(hello, "/", None)
        ours.append(o)
        base.append(b)
        ratios.append(o / b)
    return {"portal_s": statistics.median(ours), "hello_s": statistics.median(base), "ratio": spread(ratios)}


def _page_weight(base: str, cookie: str, pages: list[str]) -> dict[str, Any]:
    weights: dict[str, Any] = {}
    for path in pages:
        request = urllib.request.Request(base + path, headers={"Cookie": cookie})
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our own local server
            html = response.read()
        assets = sorted(set(re.findall(rb'(?:href|src)="(/assets/[^"]+)"', html)))
        raw, packed = len(html), len(gzip.compress(html))
        for asset in assets:
            with urllib.request.urlopen(base + asset.decode(), timeout=30) as response:  # noqa: S310
                body = response.read()
            raw, packed = raw + len(body), packed + len(gzip.compress(body))
        weights[path] = {"html_bytes": len(html), "total_bytes": raw, "total_gzip_bytes": packed,
                         "requests": 1 + len(assets)}
    return weights


def _live_latency(base: str, username: str, user_id: str, session: str) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from streamspace.auth.principal import Principal
    from streamspace.sessions.service import patch_session

    owner = Principal(user_id=user_id, username=username, role="user", groups=(), family_id=None)
    samples: list[float] = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        page = browser.new_page()
        page.goto(base + "/login?next=/sessions")
        page.fill("#f-username", username)
        page.fill("#f-password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(base + "/sessions")
        page.wait_for_timeout(1000)  # the stream is open
        page.evaluate("""() => {
            window.__seen = {};
            new MutationObserver(() => {
                const text = document.querySelector('tbody').innerText;
                for (const state of ['hibernated', 'running']) {
                    if (text.includes(state + ' ·') && !(state in window.__seen)) window.__seen[state] = Date.now();
                }
            }).observe(document.querySelector('tbody'), {childList: true, subtree: true, characterData: true});
        }""")
        state = "running"
        for _ in range(LIVE_ROUNDS):
            state = "hibernated" if state == "running" else "running"
            page.evaluate("(s) => { delete window.__seen[s]; }", state)
            changed = time.time() * 1000
            patch_session(owner, session, {"state": state})
            deadline = time.monotonic() + 30
            seen = None
            while seen is None and time.monotonic() < deadline:
                seen = page.evaluate("(s) => window.__seen[s]", state)
                if seen is None:
                    page.wait_for_timeout(5)
            if seen is None:
                raise RuntimeError(f"the page never showed {state}")
            samples.append(seen - changed)
        browser.close()
    return {"rounds": len(samples), "p50_ms": round(statistics.median(samples), 1),
            "p95_ms": round(_percentile(samples, 0.95), 1), "max_ms": round(max(samples), 1)}


def make_user(username: str, *, role: str = "user", password: str) -> str:
    from streamspace.auth.passwords import hash_password
    from streamspace.db import fetch_one

    row = fetch_one("INSERT INTO users (username, email, role, password_hash) VALUES (%s, %s, %s, %s)"
                    " RETURNING id::text AS id", (username, f"{username}@example.com", role, hash_password(password)))
    assert row is not None
    return str(row["id"])


def run() -> dict[str, Any]:
    from bench.support import benchmark_database
    from streamspace.auth.principal import Principal
    from streamspace.local.runner import LocalStack
    from streamspace.login.service import login
    from streamspace.sessions.service import create_session
    from streamspace.templates import service as templates

    os.environ.setdefault("PASSWORD_HASH_PROFILE", "test")
    benchmark_database()
    stack = LocalStack(cluster="sim", kubelet_delay=0.1, announce=lambda line: None).start()
    try:
        admin_id = make_user("bench-admin", role="admin", password=PASSWORD)
        admin = Principal(admin_id, "bench-admin", "admin", (), None)
        templates.create_template({"name": "firefox", "displayName": "Firefox", "category": "Browsers",
                                       "baseImage": "lscr.io/linuxserver/firefox:latest",
                                       "defaultResources": {"cpu": "1", "memory": "1Gi"},
                                       "vnc": {"enabled": True, "port": 3000}}, admin)
        deadline = time.monotonic() + 30
        while (templates.get_template("firefox", admin)["status"]["phase"] != "Ready"
               and time.monotonic() < deadline):
            time.sleep(0.1)
        user_id = make_user("bench-user", password=PASSWORD)
        session = create_session(Principal(user_id, "bench-user", "user", (), None), {"template": "firefox"})["name"]
        token = login({"username": "bench-user", "password": PASSWORD}, "127.0.0.1")["token"]
        admin_token = login({"username": "bench-admin", "password": PASSWORD}, "127.0.0.1")["token"]
        base = stack.api_url
        weight = _page_weight(base, f"streamspace_portal={token}",
                              ["/login", "/", "/catalog/firefox", "/sessions", f"/sessions/{session}", "/quota"])
        weight.update(_page_weight(base, f"streamspace_portal={admin_token}", ["/admin", "/admin/users"]))
        live = _live_latency(base, "bench-user", user_id, session)
        env = {k: v for k, v in os.environ.items() if k not in ("K_SINK",)}
        cold = _cold_start(env, f"streamspace_portal={token}")
    finally:
        stack.stop()
    return {"cold_start": cold, "page_weight": weight, "live_update_ms": live}
