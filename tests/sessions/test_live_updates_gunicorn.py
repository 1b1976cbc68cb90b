"""The live-update streams as production serves them: functions-framework's gunicorn with gthread
workers (THREADS per process), not the werkzeug server of the other tests. A WebSocket takes over
gunicorn's socket and must hand the worker thread back cleanly when it ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import websocket

from streamspace.db import execute
from streamspace.local.server import unused_port
from tests.conftest import make_user, token_for
from tests.sim.sim_helpers import ProcessOutput, eventually

ROOT = Path(__file__).resolve().parents[2]



@pytest.mark.slow
def test_websocket_and_sse_under_gunicorn(db_url: str) -> None:
    user_id = make_user("gina")
    execute("INSERT INTO sessions (namespace, name, user_id, username, template)"
            " VALUES ('streamspace', 'gina-firefox-1', %s, 'gina', 'firefox')", (user_id,))
    token = token_for(user_id, "gina")
    port = unused_port()
    env = {**os.environ, "DATABASE_URL": db_url, "WORKERS": "1", "THREADS": "4", "LIVE_STREAM_SECONDS": "3s"}
    ff = str(Path(sys.executable).with_name("functions-framework"))
    server = subprocess.Popen([ff, "--source", "functions/sessions/main.py", "--target", "handle", "--port", str(port)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    assert server.stdout is not None
    output = ProcessOutput(server.stdout)
    try:
        def answers() -> bool:  # functions-framework runs gunicorn at loglevel error: no line says it listens
            assert server.poll() is None, output.text()
            try:
                return requests.get(base + "/health", timeout=2).status_code == 200
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or slow on a loaded machine
                return False

        eventually(answers, "the function answers /health", timeout=60)
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/api/v1/ws/sessions?token={token}", timeout=30)
        assert json.loads(ws.recv())["sessions"][0]["status"]["phase"] == "Pending"
        execute("UPDATE sessions SET phase = 'Running' WHERE name = 'gina-firefox-1'")
        assert json.loads(ws.recv())["sessions"][0]["status"]["phase"] == "Running"
        with pytest.raises(websocket.WebSocketConnectionClosedException):
            while True:  # the server closes the stream when its time is up
                ws.recv()
        with requests.get(f"{base}/api/v1/events/sessions", params={"token": token}, stream=True, timeout=30) as sse:
            assert "sessions_update" in sse.text  # read to its end: the stream closes by itself
        assert requests.get(base + "/health", timeout=10).status_code == 200  # the worker still serves
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "Traceback" not in output.all_text(), output.text()
