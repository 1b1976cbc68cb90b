"""`make run` on the embedded default, as a newcomer would use it: it starts everything, answers
/health, prints the generated admin password once, a session launched through the API becomes
Running in the simulated cluster (events delivered by the local relay), its openUrl opens the
simulated desktop on `<session>.localhost:<port>` through the forward-auth check (page and
WebSocket), and Ctrl-C leaves no process behind."""

from __future__ import annotations

import re
import signal
import tempfile
from pathlib import Path

import psutil
import pytest
import requests
import yaml

from streamspace.local.server import unused_port
from tests.sim.sim_helpers import eventually

from .make_run_harness import CEILING, REQUEST_TIMEOUT, ROOT, MakeRun, postgres_of


def _open_the_simulated_desktop(base: str, host: str, auth: dict[str, str], name: str) -> None:
    """Section 6 of issue 10: the session's host, through the same forward-auth check, to the stand-in
    desktop the simulated cluster serves (a browser resolves *.localhost itself; here we connect to
    the loopback address and send the Host)."""
    import websocket

    opened = requests.get(f"{base}/api/v1/sessions/{name}/connect", headers=auth, timeout=REQUEST_TIMEOUT)
    assert opened.status_code == 200, opened.text
    open_url = opened.json()["openUrl"]
    assert open_url.startswith(f"http://{host}/.streamspace/auth?ticket=")
    assert requests.get(base + "/", headers={"Host": host}, timeout=REQUEST_TIMEOUT).status_code == 401
    redeemed = requests.get(base + open_url.split(host, 1)[1], headers={"Host": host}, allow_redirects=False,
                            timeout=REQUEST_TIMEOUT)
    assert redeemed.status_code == 303, redeemed.text
    cookie = redeemed.headers["Set-Cookie"].split(";", 1)[0]
    page = requests.get(base + "/", headers={"Host": host, "Cookie": cookie}, timeout=REQUEST_TIMEOUT)
    assert page.status_code == 200 and "SIMULATED desktop" in page.text and name in page.text
    ws_url = base.replace("http://", "ws://") + "/websockify"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(ws_url, host=host, timeout=REQUEST_TIMEOUT)
    assert refused.value.status_code == 401
    ws = websocket.create_connection(ws_url, host=host, cookie=cookie, timeout=REQUEST_TIMEOUT)
    try:
        assert "SIMULATED desktop" in ws.recv()
        ws.send("ping from the browser")
        assert ws.recv() == "ping from the browser"
    finally:
        ws.close()


@pytest.mark.slow
def test_make_run_serves_the_api_and_a_session_becomes_running() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="ssr-", dir="/tmp"))
    port = unused_port()
    run = MakeRun(data_dir, port)
    base = run.base
    children: list[psutil.Process] = []
    try:
        run.wait_healthy()
        assert postgres_of(data_dir), "the embedded PostgreSQL should be running"
        children = run.children()
        assert requests.get(base + "/api/v1/sessions", timeout=REQUEST_TIMEOUT).status_code == 401
        auth = run.login(run.printed_password())

        from streamspace.domain.templates import template_to_api

        sample = template_to_api(yaml.safe_load((ROOT / "crds" / "samples" / "template-firefox.yaml").read_text()))
        template = {k: v for k, v in sample.items() if k not in ("status", "createdAt", "namespace")}
        made = requests.post(base + "/api/v1/templates", json=template, headers=auth, timeout=REQUEST_TIMEOUT)
        assert made.status_code == 201, made.text
        created = requests.post(base + "/api/v1/sessions", json={"template": "firefox"}, headers=auth,
                                timeout=REQUEST_TIMEOUT)
        assert created.status_code == 201, created.text
        name = created.json()["name"]

        def running() -> dict | None:
            body = requests.get(f"{base}/api/v1/sessions/{name}", headers=auth, timeout=REQUEST_TIMEOUT).json()
            return body if body["status"]["phase"] == "Running" else None

        session = eventually(running, f"session {name} to be Running", CEILING)
        host = f"{name}.localhost:{port}"
        assert session["status"]["url"] == f"http://{host}/"
        _open_the_simulated_desktop(base, host, auth, name)
    finally:
        run.stop()
    process = run.process
    text = run.text
    # make itself dies of the SIGINT (-2) like any foreground job; the runner must have stopped cleanly.
    assert process.returncode in (0, -signal.SIGINT), text
    assert "streamspace: stopping" in text and "Traceback" not in text, text
    assert "SIMULATED Kubernetes API server" in text
    assert len(re.findall(r"password=\S+", text)) == 1  # generated, printed exactly once
    eventually(lambda: not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE],
               "every process make run started to end", CEILING)
    eventually(lambda: not postgres_of(data_dir), "the embedded PostgreSQL to stop", CEILING)
