"""Cold start: process start to first HTTP 200, bare functions-framework hello world vs our
health route (which imports the shared library and answers after a real database query).

Both run under the same `functions-framework` command (gunicorn), alternated, median of N."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.support import ROOT, benchmark_database, hello_world_source, median_of

ROUNDS = 7


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def time_to_first_200(source: Path, path: str, env: dict[str, str]) -> float:
    port = _free_port()
    command = [str(Path(sys.executable).with_name("functions-framework")), "--source", str(source),
               "--target", "handle", "--host", "127.0.0.1", "--port", str(port)]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{source} exited with {process.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.003)
            if time.perf_counter() - started > 30:
                raise RuntimeError("no 200 within 30 s")
    finally:
        process.terminate()
        process.wait(timeout=10)


def run() -> dict:
    benchmark_database()
    env = dict(os.environ)
    hello = hello_world_source(Path(tempfile.mkdtemp(prefix="ssb-hello-")))
    ours = ROOT / "functions" / "metrics" / "main.py"
    bare, health = [], []
    for _ in range(ROUNDS):
        bare.append(time_to_first_200(hello, "/", env))
        health.append(time_to_first_200(ours, "/health", env))
    bare_ms, ours_ms = median_of(bare) * 1000, median_of(health) * 1000
    return {
        "rounds": ROUNDS,
        "bare_hello_world_ms": round(bare_ms, 1),
        "streamspace_health_ms": round(ours_ms, 1),
        "ratio": round(ours_ms / bare_ms, 2),
        "target": "<= 1.5",
    }
