"""`make run` on the embedded default: starts everything, answers /health, and Ctrl-C leaves no
process behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_make_run_starts_the_system_and_ctrl_c_stops_everything() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="ssr-", dir="/tmp"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KUBECONFIG", "K_SINK")}
    env.update({"API_PORT": str(port), "STREAMSPACE_DATA_DIR": str(data_dir), "STREAMSPACE_CLUSTER": "sim",
                "ADMIN_PASSWORD": "", "LOG_LEVEL": "WARNING"})
    process = subprocess.Popen(["make", "-s", "run"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        healthy = False
        while time.monotonic() < deadline and not healthy:
            assert process.poll() is None, "make run exited early:\n" + "".join(lines)
            try:
                response = requests.get(f"http://127.0.0.1:{port}/health", timeout=2)
                healthy = response.status_code == 200 and response.json()["status"] == "healthy"
            except requests.ConnectionError:
                time.sleep(0.3)
        assert healthy, "no healthy /health within 120 s"
        assert requests.get(f"http://127.0.0.1:{port}/api/v1/sessions", timeout=5).status_code == 401
        children = psutil.Process(process.pid).children(recursive=True)
        postgres = [p for p in psutil.process_iter(["name", "cmdline"])
                    if p.info["name"] == "postgres" and str(data_dir) in " ".join(p.info["cmdline"] or [])]
        assert postgres, "the embedded PostgreSQL should be running"
    finally:
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=60)
        lines.append(output)
    text = "".join(lines)
    # make itself dies of the SIGINT (-2) like any foreground job; the runner must have stopped cleanly.
    assert process.returncode in (0, -signal.SIGINT), text
    assert "streamspace: stopping" in text and "Traceback" not in text, text
    assert "SIMULATED Kubernetes API server" in text
    assert "Bootstrap admin created: username=admin password=" in text  # generated, printed once
    time.sleep(0.5)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    leftovers = [p for p in psutil.process_iter(["name", "cmdline"])
                 if p.info["name"] == "postgres" and str(data_dir) in " ".join(p.info["cmdline"] or [])]
    assert not leftovers, leftovers
