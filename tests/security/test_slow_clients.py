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


HEARTBEAT_INTERVAL = 30.0  # seconds between a client's heartbeats (docs/walkthrough.md)


def _answered(sock: socket.socket, path: str) -> bytes:
    """Send GET `path` (HTTP/1.1, nothing said about the connection) and read the answer's head and
    body (it has a Content-Length); the head."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        data = sock.recv(4096)
        assert data, f"closed before the answer: {answer!r}"
        answer += data
    head, _, body = answer.partition(b"\r\n\r\n")
    fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:])
    length = int(next(value for name, value in fields.items() if name.lower() == b"content-length"))
    while len(body) < length:
        data = sock.recv(4096)
        assert data, "closed before the whole body"
        body += data
    return head


def test_the_local_server_keeps_no_connection_alive_to_race_a_heartbeat():
    """A server that closes an idle kept-alive connection just as the client sends its next request
    on it makes the client see a reset (or a connection closed without an answer). The local server
    (werkzeug's, `make run`) keeps none: every answer says Connection: close and the connection ends
    with it, so a heartbeat always comes on a new connection. READ_TIMEOUT bounds only a request
    head that has begun, whatever it is near."""

    def hello(environ, start_response):  # a length: nothing in the answer itself needs the close
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"hello"]

    server = BackgroundServer(hello).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
            assert b"\r\nConnection: close" in _answered(sock, "/")
            assert _closed_by_server(sock)
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
        # The images' server keeps a connection alive, and closes it idle after gunicorn's keepalive
        # (its default, 2 s: neither functions-framework nor the image sets it), long before a client's
        # next heartbeat on it: the close never races the heartbeat, however loaded the machine.
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=60) as sock:
            assert b"\r\nConnection: keep-alive" in _answered(sock, "/api/v1/health")
            assert _answered(sock, "/version")  # the next request on the same connection is answered
            assert _closed_by_server(sock, within=HEARTBEAT_INTERVAL * 0.8)
    finally:
        server.stop()
