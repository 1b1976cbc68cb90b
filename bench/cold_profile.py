"""One function's cold start taken apart, in process: `python -m bench.cold_profile SPEC_JSON`.

Run in a fresh interpreter with the function's environment (bench_production does, for
BENCH_CPROFILE=folder). It reports the process CPU of each step up to the first answer, the way
functions-framework's CLI takes them (import functions-framework, create_app: the function's own
imports, then the first request through the app), and then writes a cProfile of a SECOND fresh
start's first request (a profile inflates what it measures: the figures come from the unprofiled
start). The request goes through Flask's test client, not gunicorn: the same app, minus the socket.

BENCH_PREIMPORT=psycopg2,psycopg2.extensions: these modules are imported right after functions-framework and
reported apart (`preimport_ms`), so that the app import and the first request show the function's own
cost without the database driver's. BENCH_CALLGRIND=1: the same start is also counted under callgrind
(instructions do not depend on the machine's load): the whole start, and the start stopped before the
app is created; their difference is the function's own cost (`own_instructions`).
"""

from __future__ import annotations

import base64
import cProfile
import io
import json
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def profile(source: Path, request: dict[str, Any], env: dict[str, str], report: Path,
            cluster: Any = None, python: str = sys.executable) -> dict[str, Any]:
    """{step: CPU ms} of one unprofiled start, and the cProfile of another start's first request in `report`.
    With the simulated `cluster`: the Kubernetes requests the unprofiled start made, too."""
    spec = {"source": str(source), "method": request.get("method", "GET"), "path": request["path"],
            "headers": request.get("headers") or {},
            "body": base64.b64encode(request.get("body") or b"").decode()}
    figures: dict[str, Any] = {}
    if cluster is not None:
        cluster.clear_requests()
    for profiled in (False, True):
        # run as a script (standard library and functions-framework only): `python` may be a venv without the bench
        done = subprocess.run([python, str(Path(__file__).resolve()), json.dumps({**spec, "profile": profiled})],
                              env=env, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"{source}: profile failed: {done.stderr[-2000:]}")
        if profiled:
            report.write_text(done.stdout)
        else:
            figures = json.loads(done.stdout)
            if cluster is not None:
                figures["kubernetes"] = [f"{r.method} {r.path}{'?' + r.query if r.query else ''} {r.status}"
                                         for r in cluster.requests]
    if os.environ.get("BENCH_CALLGRIND"):
        whole = _instructions({**spec, "profile": False}, env, python)
        base = _instructions({**spec, "profile": False, "stop_before_app": True}, env, python)
        figures.update(instructions=whole, instructions_before_app=base, own_instructions=whole - base)
    return figures


def _instructions(spec: dict[str, Any], env: dict[str, str], python: str) -> int:
    """Instructions callgrind counts for one fresh start of `spec` (the whole process)."""
    with tempfile.TemporaryDirectory(prefix="ss-callgrind-") as folder:
        out = Path(folder) / "callgrind.out"
        done = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                               python, str(Path(__file__).resolve()), json.dumps(spec)],
                              env=env, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise RuntimeError(f"callgrind failed: {done.stderr[-2000:]}")
        found = re.search(r"^summary:\s*(\d+)", out.read_text(), re.MULTILINE)
        if found is None:
            raise RuntimeError(f"no summary in {out}")
        return int(found.group(1))


def main(spec: dict[str, Any]) -> int:
    clock = time.process_time
    started = clock()
    import functions_framework

    imported = clock()
    for module in filter(None, os.environ.get("BENCH_PREIMPORT", "").split(",")):
        __import__(module)
    preimported = clock()
    if spec.get("stop_before_app"):
        return 0
    app = functions_framework.create_app("handle", spec["source"])
    created = clock()
    from streamspace.db import statement_count

    statements = statement_count()
    client = app.test_client(use_cookies=False)  # the request's own Cookie header, as sent
    body = base64.b64decode(spec["body"]) or None
    profiler = cProfile.Profile() if spec["profile"] else None
    before, wall_before = clock(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    answer = client.open(spec["path"], method=spec["method"], headers=spec["headers"], data=body)
    if profiler is not None:
        profiler.disable()
    answered, wall_answered = clock(), time.perf_counter()
    if not 200 <= answer.status_code < 300:
        print(f"{spec['method']} {spec['path']} answered {answer.status_code}: {answer.data[:300]!r}", file=sys.stderr)
        return 1
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(60)
        stats.sort_stats("cumulative").print_stats("streamspace|functions/", 80)  # our own calls
        stats.sort_stats("tottime").print_stats(40)
        print(f"first request: {(answered - before) * 1000:.1f} ms CPU under the profiler\n{out.getvalue()}")
        return 0
    print(json.dumps({"interpreter_ms": round(started * 1000, 1),
                      "functions_framework_ms": round((imported - started) * 1000, 1),
                      "preimport_ms": round((preimported - imported) * 1000, 1),
                      "app_import_ms": round((created - preimported) * 1000, 1),
                      "first_request_ms": round((answered - before) * 1000, 1),
                      # the wall clock of the first request: its CPU plus what it waited for (the
                      # database, the API server, other threads; a core, on a loaded machine)
                      "first_request_wall_ms": round((wall_answered - wall_before) * 1000, 1),
                      "own_ms": round((created - preimported + answered - before) * 1000, 1),
                      "sql_statements": statement_count() - statements,
                      "modules": len(sys.modules), "pid": os.getpid()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
