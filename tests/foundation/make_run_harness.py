"""`make run` as a child process, the way a newcomer starts it: tests drive it over HTTP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import psutil
import requests

from tests.sim.sim_helpers import ProcessOutput, eventually

ROOT = Path(__file__).resolve().parents[2]
# Ceilings, not expectations: on a loaded 2-core CI machine starting the embedded Postgres, the
# simulated cluster and every function, or stopping them, can take minutes. Every wait returns as
# soon as its event happens; these only bound how long a broken run takes to fail.
CEILING = 300.0  # seconds for one awaited event (healthy, a phase reached, processes gone)
REQUEST_TIMEOUT = 60.0  # seconds for one HTTP call to the running stack



def postgres_of(data_dir: Path) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name", "cmdline"])
            if p.info["name"] == "postgres" and str(data_dir) in " ".join(p.info["cmdline"] or [])]


class MakeRun:
    """One `make run` on `data_dir` and `port` (simulated cluster, generated admin password)."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KUBECONFIG", "K_SINK")}
        env.update({"API_PORT": str(port), "STREAMSPACE_DATA_DIR": str(data_dir), "STREAMSPACE_CLUSTER": "sim",
                    "ADMIN_PASSWORD": "", "LOG_LEVEL": "WARNING"})
        self.process = subprocess.Popen(["make", "-s", "run"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, start_new_session=True)
        assert self.process.stdout is not None
        self.output = ProcessOutput(self.process.stdout)

    @property
    def text(self) -> str:
        return self.output.text()

    def wait_healthy(self, timeout: float = CEILING) -> None:
        def healthy() -> bool:
            assert self.process.poll() is None, "make run exited early:\n" + self.text
            try:
                response = requests.get(self.base + "/health", timeout=REQUEST_TIMEOUT)
            except requests.ConnectionError:  # not listening yet
                return False
            return response.status_code == 200 and response.json()["status"] == "healthy"

        eventually(healthy, "a healthy /health", timeout)

    def printed_password(self) -> str:
        line = self.output.wait_for_line("username=admin password=")
        found = re.search(r"username=admin password=(\S+)", line)
        assert found is not None, line
        return found.group(1)

    def login(self, password: str) -> dict[str, str]:
        login = requests.post(self.base + "/api/v1/auth/login", json={"username": "admin", "password": password},
                              timeout=REQUEST_TIMEOUT)
        assert login.status_code == 200, login.text
        return {"Authorization": f"Bearer {login.json()['token']}"}

    def children(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def stop(self) -> str:
        """Ctrl-C, as a user would; returns everything it printed."""
        try:
            os.killpg(self.process.pid, signal.SIGINT)
        except ProcessLookupError:
            pass  # it has ended already (a failed start): its output says why, and the test reports that
        try:
            self.process.wait(timeout=CEILING)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # leave nothing behind for the next test
            self.process.wait()
            raise AssertionError(f"make run did not stop within {CEILING:.0f} s of Ctrl-C:\n{self.text}") from None
        return self.output.all_text(CEILING)
