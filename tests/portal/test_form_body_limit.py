"""The portal's form posts read at most MAX_FORM_BYTES of a body (plus the byte that shows it is
over), whatever the client declares or keeps sending, and refuse a longer one with a 413 page a
person can read instead of cutting the form short. functions-framework's after-request hook reads a
whole body into memory after every answer (the error page's and a 404's too): without the limit a
client that declared 50 MB held a worker thread and its memory as long as it kept sending.

The portal function is served over real HTTP from its own source; a WSGI layer in front of it
counts the body bytes the process takes from the server, and the clients are raw sockets, so what
they declare and send is exactly what the test says."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from streamspace.portal.web import MAX_FORM_BYTES

PORTAL_SOURCE = Path(__file__).resolve().parents[2] / "functions" / "portal" / "main.py"
ANSWER_WITHIN = 60.0  # seconds: generous on a loaded machine; the body that would be waited for never comes


class _CountedInput:
    """The server's body stream, counting what the application reads of it."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.taken = 0

    def read(self, size: int | None = -1) -> bytes:
        data = self._stream.read(size)
        self.taken += len(data)
        return bytes(data)

    def readline(self, size: int | None = -1) -> bytes:
        data = self._stream.readline(size)
        self.taken += len(data)
        return bytes(data)


class _Counting:
    """WSGI layer in front of the portal: each request's body, counted, by its X-Test-Call header."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.inputs: dict[str, _CountedInput] = {}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        counted = _CountedInput(environ["wsgi.input"])
        environ["wsgi.input"] = counted
        self.inputs[environ.get("HTTP_X_TEST_CALL", "")] = counted
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def served(db_url: str) -> Iterator[tuple[str, int, _Counting]]:
    from functions_framework import create_app

    from streamspace.local.server import BackgroundServer

    counting = _Counting(create_app(target="handle", source=str(PORTAL_SOURCE)))
    server = BackgroundServer(counting).start()
    yield "127.0.0.1", server.port, counting
    server.stop()


def _post(served: tuple[str, int, _Counting], path: str, body: bytes, *, declared: int | None,
          chunk: int = 16 * 1024, finish: bool = True) -> tuple[bytes, int]:
    """POST `body` to `path` over a raw socket, with Content-Length `declared` (None: chunked, ended by
    the last chunk when `finish`); (the answer as far as it came, the body bytes the portal read)."""
    host, port, counting = served
    call = uuid.uuid4().hex
    framing = f"Content-Length: {declared}" if declared is not None else "Transfer-Encoding: chunked"
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nX-Test-Call: {call}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n{framing}\r\n\r\n").encode()
    if declared is None:
        pieces = [body[at:at + chunk] for at in range(0, len(body), chunk)]
        body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + (b"0\r\n\r\n" if finish else b"")
    with socket.create_connection((host, port), timeout=ANSWER_WITHIN) as conn:
        conn.sendall(head + body)  # (the connection stays open: what was declared but not sent never comes)
        answer = b""
        try:
            while b"</html>" not in answer.lower():
                data = conn.recv(65536)
                if not data:
                    break
                answer += data
        except TimeoutError:
            pytest.fail(f"no whole answer within {ANSWER_WITHIN:.0f} s: the portal waits for the rest of the body "
                        f"({answer[:80]!r})")
    return answer, counting.inputs[call].taken


def _form(size: int, username: str) -> bytes:
    """A login form of exactly `size` bytes whose last field is the username (cut short, it is lost)."""
    tail = f"&password=wrong&username={quote(username)}".encode()
    return b"pad=" + b"x" * (size - 4 - len(tail)) + tail


@pytest.mark.parametrize("framing", ["declared", "chunked"])
def test_a_form_over_the_limit_is_refused_with_a_page_and_no_more_of_it_is_read(served, framing: str) -> None:
    """The client declares 50 MB (or sends chunks without end) and sends a good deal more than the
    limit: a 413 page that says what to do comes at once, and the portal read at most the limit
    and one byte."""
    over = _form(MAX_FORM_BYTES + 64 * 1024, "someone")
    answer, taken = _post(served, "/login", over, declared=50_000_000 if framing == "declared" else None,
                          finish=False)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"Form too large" in answer and b"Shorten what you entered" in answer
    assert taken <= MAX_FORM_BYTES + 1


@pytest.mark.parametrize("path", ["/no/such/page", "/assets/portal.css", "/health"])
def test_no_answer_waits_for_a_declared_body_that_never_comes(served, path: str) -> None:
    """Any path of the portal (a 404 page, a static file, the Api's routes it serves): the body a
    client declared is not what the answer waits for."""
    answer, taken = _post(served, path, b"x" * 1000, declared=50_000_000)
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    assert taken <= MAX_FORM_BYTES + 1


@pytest.mark.parametrize("framing", ["declared", "chunked"])
def test_a_form_of_exactly_the_limit_is_read_whole(served, framing: str) -> None:
    """The limit refuses, it never truncates: a form of exactly MAX_FORM_BYTES is read to its last
    field (the username the login page shows again), and one byte more is refused."""
    username = f"edge{uuid.uuid4().hex[:8]}"
    declared = MAX_FORM_BYTES if framing == "declared" else None
    answer, taken = _post(served, "/login", _form(MAX_FORM_BYTES, username), declared=declared)
    assert not answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert f'value="{username}"'.encode() in answer, answer[:200]
    assert taken == MAX_FORM_BYTES
    one_more = _form(MAX_FORM_BYTES + 1, username)
    answer, taken = _post(served, "/login", one_more, declared=len(one_more) if framing == "declared" else None)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert taken <= MAX_FORM_BYTES + 1
