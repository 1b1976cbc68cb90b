"""A threaded WSGI server in a background thread (local runs and tests).

Unlike a bare development server it bounds what a client can hold: a connection that sends no
complete request head within READ_TIMEOUT seconds is closed, and at most MAX_CONNECTIONS are served at
once (one thread each); beyond that a new connection is closed at once instead of taking a thread.
The images and the compose `api` service serve HTTP with gunicorn instead (`API_SERVER=gunicorn`).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer, WSGIRequestHandler

READ_TIMEOUT = 30.0
MAX_CONNECTIONS = 256
_LOWEST_CHOSEN_PORT = 10000


def _ephemeral_range_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            return int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def unused_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, for a server that another process will bind.

    Not `bind(0)`: the kernel hands that out from its ephemeral range, the range it also draws the
    local ports of outgoing connections from, so between releasing the probe and the other process
    binding it any connection on the machine may take the port ("Address already in use", seen in
    CI). A port below that range is only ever taken by a deliberate bind. The choice uses the
    system's randomness because test runners reseed `random` identically in parallel workers."""
    start = _ephemeral_range_start()
    chooser = random.SystemRandom()
    for _ in range(100):
        port = chooser.randrange(_LOWEST_CHOSEN_PORT, start) if start > _LOWEST_CHOSEN_PORT + 1000 else 0
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue  # someone listens there: draw again
            return int(probe.getsockname()[1])
    raise RuntimeError(f"no unused port on {host} below {start}")


class _QuietHandler(WSGIRequestHandler):
    read_timeout: float | None = READ_TIMEOUT

    def log_request(self, *args: Any, **kwargs: Any) -> None:  # our functions log requests themselves
        pass

    def handle_one_request(self) -> None:
        # The request head must arrive within read_timeout; the response (a live stream, a
        # websocket) may then take as long as it needs.
        self.connection.settimeout(self.read_timeout)
        super().handle_one_request()

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        if parsed:
            self.connection.settimeout(None)
        return parsed


class _BoundedServer(ThreadedWSGIServer):
    """A thread per connection, at most `max_connections` of them."""

    def __init__(self, *args: Any, max_connections: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # full: refuse at once rather than queue behind slow clients
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)  # type: ignore[misc]
        finally:
            self._slots.release()


class BackgroundServer:
    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, read_timeout: float = READ_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        handler = type("_TimedHandler", (_QuietHandler,), {"read_timeout": read_timeout})
        self._server: BaseWSGIServer = _BoundedServer(host, port, app, handler, max_connections=max_connections)
        self._server.daemon_threads = True  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"wsgi-{port}", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self.port}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class GunicornServer:
    """The HTTP functions behind gunicorn in a child process: the production server of the images
    (functions-framework's gunicorn application, WORKERS/THREADS from the environment), for the
    compose `api` service (`API_SERVER=gunicorn`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port or unused_port(host)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, ready_within: float = 120.0) -> GunicornServer:
        self._process = subprocess.Popen([sys.executable, "-m", "streamspace.local.gateway", self.host,
                                          str(self.port)], env=dict(os.environ))
        deadline = time.monotonic() + ready_within
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with status {self._process.returncode}")
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not listen on {self.url} within {ready_within:.0f}s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
