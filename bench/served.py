"""Serving functions the way production does, and driving them with a compiled load generator.

- Every app runs in its OWN process under `functions-framework` (gunicorn, gthread), with the
  worker, thread and timeout settings read from the Dockerfile's ENV, so the figures follow the
  images if those change; `make bench` serves each from an image-like venv (bench.production_venv),
  the detailed benchmarks from the development venv unless given one.
- Load comes from `wrk` (C, epoll), never from Python in the server's interpreter, at a stated
  number of keep-alive connections.
- Cold start: process start to the first 2xx on a given request (HTTP) or CloudEvent.
- Memory: proportional set size (PSS) of the process tree, which is how the kernel would split
  shared pages between containers; the gunicorn master is included (it is in every image).
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.production_venv import ProductionVenv
from bench.support import ROOT, process_tree, tree_cpu_seconds
from streamspace.local.server import unused_port

HELLO_HTTP = '''
import functions_framework


@functions_framework.http
def handle(request):
    return "Hello, World!"
'''

HELLO_EVENT = '''
import functions_framework


@functions_framework.cloud_event
def handle(event):
    return None
'''

# The floor of any function that reads Postgres on its first request: hello world plus the driver's
# import, the modules streamspace.db.driver imports (psycopg2 and our own pool).
HELLO_PSYCOPG2 = '''
import functions_framework


@functions_framework.http
def handle(request):
    import psycopg2  # noqa: F401
    import psycopg2.errors  # noqa: F401
    import psycopg2.extensions  # noqa: F401

    return "Hello, World!"
'''

SERVING_SETTINGS = ("WORKERS", "THREADS", "CLOUD_RUN_TIMEOUT_SECONDS")


def image_serving_env() -> dict[str, str]:
    """WORKERS, THREADS and CLOUD_RUN_TIMEOUT_SECONDS exactly as the Dockerfile's runtime stage sets them."""
    text = (ROOT / "Dockerfile").read_text()
    found = {}
    for name in SERVING_SETTINGS:
        match = re.search(rf"^\s*{name}=(\S+?)\s*\\?$", text, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"the Dockerfile sets no {name}: the benchmark cannot serve as the images do")
        found[name] = match.group(1)
    return found


def hello_sources(directory: Path) -> tuple[Path, Path]:
    """(HTTP hello world, CloudEvent hello world) source files."""
    http, event = directory / "hello_http.py", directory / "hello_event.py"
    http.write_text(HELLO_HTTP)
    event.write_text(HELLO_EVENT)
    return http, event


def precompile(*folders: Path) -> None:
    """The images run `python -m compileall` and `python -m streamspace precompile` (the portal's
    templates) at build time; do the same for the sources served here."""
    import compileall

    from streamspace.portal.web import precompile_templates

    for folder in folders:
        compileall.compile_dir(str(folder), quiet=1)
    precompile_templates()


class Served:
    """One app served by functions-framework in its own process tree on 127.0.0.1, from `venv`
    (an image-like venv) or else the development venv this process runs in."""

    def __init__(self, source: Path, env: dict[str, str], stderr_to: Path | None = None,
                 venv: ProductionVenv | None = None) -> None:
        self.source = source
        self.stderr_to = stderr_to  # a file for the server's stderr (e.g. -X importtime's report), else a pipe
        self.port = unused_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if venv is not None:
            env = venv.serving_env(env)
        self.functions_framework = (venv.functions_framework if venv is not None
                                    else str(Path(sys.executable).with_name("functions-framework")))
        self.env = {**env, **image_serving_env(), "PORT": str(self.port)}
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def spawn(self) -> Served:
        stderr = self.stderr_to.open("wb") if self.stderr_to is not None else subprocess.PIPE
        self.started_at = time.perf_counter()
        self.process = subprocess.Popen(
            [self.functions_framework, "--source", str(self.source), "--target", "handle",
             "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=stderr)
        if self.stderr_to is not None:
            stderr.close()  # type: ignore[union-attr]
        return self

    def start(self, ready_path: str = "/health", timeout: float = 60.0) -> Served:
        """Spawn and wait until the app answers `ready_path` (any HTTP status means it is up)."""
        self.spawn()
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            self._check_alive()
            try:
                with urllib.request.urlopen(self.url + ready_path, timeout=2):  # noqa: S310
                    return self
            except urllib.error.HTTPError:
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"{self.source} did not answer within {timeout} s")

    def _check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
            raise RuntimeError(f"{self.source} exited with {self.process.returncode}: {err[-2000:]}")

    def pids(self) -> list[int]:
        assert self.process is not None
        return process_tree(self.process.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the process tree (gunicorn master + workers)."""
        return tree_cpu_seconds(self.process.pid if self.process is not None else 0)

    def memory_kib(self) -> dict[str, int]:
        """PSS and RSS of the process tree (master + workers), in KiB."""
        pss = rss = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                    elif line.startswith("Rss:"):
                        rss += int(line.split()[1])
            except OSError:
                pass
        return {"pss_kib": pss, "rss_kib": rss}

    def kill(self) -> None:
        """End the process tree at once (SIGKILL to the master and its workers): for a measured start
        whose figures are taken. A graceful stop waits for the gthread worker's poll tick (up to 1 s)
        and measures nothing."""
        if self.process is not None and self.process.poll() is None:
            for pid in reversed(self.pids()):  # the workers first, so none outlives its master unseen
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass  # ended meanwhile
            self.process.wait()
        self.stop()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def first_success(served: Served, path: str, *, method: str = "GET", headers: dict[str, str] | None = None,
                  body: bytes | None = None, timeout: float = 60.0) -> float:
    """Spawn `served` and return seconds from process start to the first 2xx answer to the request.

    Until the server listens, a refused connection is retried after 2 ms, the same way for every app
    measured; the retries are bare connects (http.client's: about 20 us of this process's CPU each,
    where a whole urllib request costs about 75), so the poller takes less of the cores the starting
    process needs. The request then goes out on the connection that was accepted: gunicorn's master
    listens before it forks the worker, so it waits in the backlog until the worker answers."""
    served.spawn()
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=timeout)
    try:
        while True:
            served._check_alive()
            try:
                connection.connect()
                break
            except OSError:
                connection.close()
                if time.perf_counter() - served.started_at > timeout:
                    raise RuntimeError(f"{served.source}: not listening within {timeout} s") from None
                time.sleep(0.002)
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        answer = response.read()
        seconds = time.perf_counter() - served.started_at
    finally:
        connection.close()
    if not 200 <= response.status < 300:
        raise RuntimeError(f"{served.source}: {method} {path} answered {response.status}: {answer[:300]!r}")
    return seconds


# -- wrk ---------------------------------------------------------------------------------------------
CONNECTIONS = 16
WRK_THREADS = 2


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed: `make bench` installs it (apt-get install wrk, as root)")
    return found


_LUA = '''
wrk.method = "{method}"
{headers}
{body}
done = function(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
              + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %d %d %.3f %.1f %.1f %.1f\\n", summary.requests, bad,
           summary.duration / 1e6, latency:percentile(50), latency:percentile(99), latency.mean))
end
'''


@dataclass(frozen=True)
class Load:
    """One wrk run: requests per second and latencies in microseconds."""

    requests: int
    errors: int
    rps: float
    p50_us: float
    p99_us: float
    mean_us: float


def wrk(url: str, *, seconds: float, method: str = "GET", headers: dict[str, str] | None = None,
        body: bytes | None = None, connections: int = CONNECTIONS, threads: int = WRK_THREADS) -> Load:
    """Drive `url` for `seconds` with `connections` keep-alive connections. Any non-2xx answer or
    socket error is counted and makes the run fail: a figure of failed requests means nothing."""

    def lua_string(value: str | bytes) -> str:
        text = value.decode() if isinstance(value, bytes) else value
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    script = _LUA.format(
        method=method,
        headers="\n".join(f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in (headers or {}).items()),
        body=f"wrk.body = {lua_string(body)}" if body is not None else "",
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        out = subprocess.run([wrk_path(), "-t", str(min(threads, connections)), "-c", str(connections),
                              "-d", f"{max(1, round(seconds))}s", "-s", handle.name, url],
                             capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    finally:
        os.unlink(handle.name)
    match = re.search(r"^RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+)$", out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"unreadable wrk output: {out}")
    requests, errors = int(match.group(1)), int(match.group(2))
    duration, p50, p99, mean = (float(match.group(i)) for i in range(3, 7))
    if errors:
        raise RuntimeError(f"{method} {url}: {errors} of {requests} requests failed under load")
    return Load(requests, errors, requests / duration, p50, p99, mean)


def spread(values: list[float]) -> dict[str, Any]:
    import statistics

    return {"median": statistics.median(values), "min": min(values), "max": max(values)}
