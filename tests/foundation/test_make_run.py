"""`make run` on the embedded default, as a newcomer would use it: it starts everything, answers
/health, prints the generated admin password once, a session launched through the API becomes
Running in the simulated cluster (events delivered by the local relay), its openUrl opens the
simulated desktop on `<session>.localhost:<port>` through the forward-auth check (page and
WebSocket), and Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _postgres_of(data_dir: Path) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name", "cmdline"])
            if p.info["name"] == "postgres" and str(data_dir) in " ".join(p.info["cmdline"] or [])]


def _open_the_simulated_desktop(base: str, host: str, auth: dict[str, str], name: str) -> None:
    """Section 6 of issue 10: the session's host, through the same forward-auth check, to the stand-in
    desktop the simulated cluster serves (a browser resolves *.localhost itself; here we connect to
    the loopback address and send the Host)."""
    import websocket

    opened = requests.get(f"{base}/api/v1/sessions/{name}/connect", headers=auth, timeout=10)
    assert opened.status_code == 200, opened.text
    open_url = opened.json()["openUrl"]
    assert open_url.startswith(f"http://{host}/.streamspace/auth?ticket=")
    assert requests.get(base + "/", headers={"Host": host}, timeout=10).status_code == 401
    redeemed = requests.get(base + open_url.split(host, 1)[1], headers={"Host": host}, allow_redirects=False,
                            timeout=10)
    assert redeemed.status_code == 303, redeemed.text
    cookie = redeemed.headers["Set-Cookie"].split(";", 1)[0]
    page = requests.get(base + "/", headers={"Host": host, "Cookie": cookie}, timeout=10)
    assert page.status_code == 200 and "SIMULATED desktop" in page.text and name in page.text
    ws_url = base.replace("http://", "ws://") + "/websockify"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(ws_url, host=host, timeout=10)
    assert refused.value.status_code == 401
    ws = websocket.create_connection(ws_url, host=host, cookie=cookie, timeout=10)
    try:
        assert "SIMULATED desktop" in ws.recv()
        ws.send("ping from the browser")
        assert ws.recv() == "ping from the browser"
    finally:
        ws.close()


@pytest.mark.slow
def test_make_run_serves_the_api_and_a_session_becomes_running() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="ssr-", dir="/tmp"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KUBECONFIG", "K_SINK")}
    env.update({"API_PORT": str(port), "STREAMSPACE_DATA_DIR": str(data_dir), "STREAMSPACE_CLUSTER": "sim",
                "ADMIN_PASSWORD": "", "LOG_LEVEL": "WARNING"})
    process = subprocess.Popen(["make", "-s", "run"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    base = f"http://127.0.0.1:{port}"
    children: list[psutil.Process] = []
    try:
        def healthy() -> bool:
            assert process.poll() is None, "make run exited early:\n" + "".join(lines)
            try:
                response = requests.get(base + "/health", timeout=2)
            except requests.ConnectionError:
                return False
            return response.status_code == 200 and response.json()["status"] == "healthy"

        _wait(healthy, 120, "a healthy /health")
        assert _postgres_of(data_dir), "the embedded PostgreSQL should be running"
        children = psutil.Process(process.pid).children(recursive=True)
        assert requests.get(base + "/api/v1/sessions", timeout=5).status_code == 401

        password = _wait(lambda: next((m.group(1) for line in lines
                                       if (m := re.search(r"username=admin password=(\S+)", line))), None),
                         10, "the bootstrap password")
        login = requests.post(base + "/api/v1/auth/login", json={"username": "admin", "password": password},
                              timeout=10)
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['token']}"}

        from streamspace.domain.templates import template_to_api

        sample = template_to_api(yaml.safe_load((ROOT / "crds" / "samples" / "template-firefox.yaml").read_text()))
        template = {k: v for k, v in sample.items() if k not in ("status", "createdAt", "namespace")}
        made = requests.post(base + "/api/v1/templates", json=template, headers=auth, timeout=10)
        assert made.status_code == 201, made.text
        created = requests.post(base + "/api/v1/sessions", json={"template": "firefox"}, headers=auth, timeout=10)
        assert created.status_code == 201, created.text
        name = created.json()["name"]

        def running() -> dict | None:
            body = requests.get(f"{base}/api/v1/sessions/{name}", headers=auth, timeout=5).json()
            return body if body["status"]["phase"] == "Running" else None

        session = _wait(running, 30, f"session {name} to be Running")
        host = f"{name}.localhost:{port}"
        assert session["status"]["url"] == f"http://{host}/"
        _open_the_simulated_desktop(base, host, auth, name)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
        reader.join(timeout=10)
    text = "".join(lines)
    # make itself dies of the SIGINT (-2) like any foreground job; the runner must have stopped cleanly.
    assert process.returncode in (0, -signal.SIGINT), text
    assert "streamspace: stopping" in text and "Traceback" not in text, text
    assert "SIMULATED Kubernetes API server" in text
    assert len(re.findall(r"password=\S+", text)) == 1  # generated, printed exactly once
    time.sleep(0.5)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not _postgres_of(data_dir)
