"""Attack: hold the local server's threads with connections that never send a complete request."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import requests
import yaml

from streamspace.local.server import BackgroundServer

ROOT = Path(__file__).resolve().parents[2]


def _hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def _closed_by_server(sock: socket.socket, within: float = 30.0) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, TimeoutError):
        return False


def test_half_open_connections_are_capped_and_timed_out():
    server = BackgroundServer(_hello, read_timeout=1.0, max_connections=4).start()
    try:
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(4)]
        idle[0].sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # an unfinished request head
        overflow = socket.create_connection(("127.0.0.1", server.port))
        assert _closed_by_server(overflow)  # the cap: refused at once, no thread taken
        assert all(_closed_by_server(sock) for sock in idle)  # the read timeout frees the others
        deadline = time.monotonic() + 30
        while True:  # the freed slots serve real requests again
            try:
                assert requests.get(server.url, timeout=10).text == "hello"
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
        for sock in (*idle, overflow):
            sock.close()
    finally:
        server.stop()


def test_the_compose_api_runs_the_production_server_and_it_serves(db_url):
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["api"]["environment"]["API_SERVER"] == "gunicorn"
    from streamspace.local.server import GunicornServer

    server = GunicornServer().start()
    try:
        answer = requests.get(server.url + "/api/v1/health", timeout=30)
        assert answer.status_code == 200
        assert answer.headers.get("Server", "").startswith("gunicorn")
    finally:
        server.stop()
