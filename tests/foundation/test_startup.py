"""A served function starts without the cyclic garbage collector and collects again from its first
answer on (streamspace.startup); nothing changes outside functions-framework's command."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import requests

from streamspace.local.server import unused_port
from streamspace.startup import pause_collector, resume_collector
from tests.sim.sim_helpers import ProcessOutput, eventually

PROBE = '''
import gc

import functions_framework

import streamspace

IMPORTED_WITH_COLLECTOR = gc.isenabled()  # the function's own imports, before its app is built

from streamspace.http import Access, Api, Request

api = Api("probe")


@api.get("/collector", access=Access.PUBLIC)
def collector(req: Request) -> dict:
    return {"enabled": gc.isenabled(), "imported_with_collector": IMPORTED_WITH_COLLECTOR}


@functions_framework.http
def handle(request):
    return api(request)
'''

FORKED = '''
import gc, json, os, sys
from streamspace.startup import pause_collector, resume_collector  # (imported as no served function)
sys.argv[0] = "/opt/venv/bin/functions-framework"
seen = {"before": gc.isenabled()}
pause_collector()
seen["paused"] = gc.isenabled()
read, write = os.pipe()
child = os.fork()
if child == 0:
    child_seen = {"after_fork": gc.isenabled()}
    resume_collector()
    child_seen["after_answer"] = gc.isenabled()
    os.write(write, json.dumps(child_seen).encode())
    os._exit(0)
os.waitpid(child, 0)
seen["parent_after_fork"] = gc.isenabled()
seen["child"] = json.loads(os.read(read, 4096))
print(json.dumps(seen))
'''


def test_outside_functions_framework_the_collector_is_left_alone() -> None:
    assert gc.isenabled()
    pause_collector()
    assert gc.isenabled()
    resume_collector()
    assert gc.isenabled()


def test_the_master_collects_again_once_it_has_forked_and_the_worker_once_it_has_answered() -> None:
    done = subprocess.run([sys.executable, "-c", FORKED], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(done.stdout) == {"before": True, "paused": False, "parent_after_fork": True,
                                       "child": {"after_fork": False, "after_answer": True}}


def test_a_function_served_by_functions_framework_answers_first_without_the_collector(
        db_url: str, tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text(PROBE)
    port = unused_port()
    ff = str(Path(sys.executable).with_name("functions-framework"))
    server = subprocess.Popen([ff, "--source", str(source), "--target", "handle", "--port", str(port)],
                              env={**os.environ, "DATABASE_URL": db_url, "WORKERS": "1", "THREADS": "4"},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert server.stdout is not None
    output = ProcessOutput(server.stdout)
    url = f"http://127.0.0.1:{port}/collector"
    answers: list[bool] = []
    imported_with: list[bool] = []
    try:
        def answered() -> bool:
            assert server.poll() is None, output.text()
            try:
                first = requests.get(url, timeout=5).json()
                answers.append(first["enabled"])
                imported_with.append(first["imported_with_collector"])
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or slow on a loaded machine
                return False
            return True

        eventually(answered, "the probe function answers", timeout=60)
        answers.append(requests.get(url, timeout=30).json()["enabled"])
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert answers == [False, True]
    assert imported_with == [False]  # paused from the function's first import of the library
