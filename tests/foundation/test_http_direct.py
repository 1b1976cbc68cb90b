"""Direct routes (Api.route(direct=True)): answered from the WSGI layer of the app functions-framework
builds, without Flask's request dispatch, and otherwise exactly like every other route: the same
headers, errors, method rule, body limit and metrics; only the exact (method, path) pairs declared
direct take the lane, paths with parameters too. Served over real HTTP from a function source."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

SOURCE = '''
import flask
import functions_framework

from streamspace.domain.errors import Forbidden
from streamspace.http import Access, Api, Reply, Request

api = Api("direct-echo")


def answer(req: Request) -> Reply:
    if req.query("refuse"):
        raise Forbidden("refused here", error="forbidden")
    return Reply({"flaskContext": flask.has_request_context(), "cookie": req.raw.cookies.get("c"),
                  "host": req.raw.headers.get("X-Forwarded-Host")}, headers={"X-Extra": "1"})


def take(req: Request) -> Reply:
    return Reply({"flaskContext": flask.has_request_context(), "fields": sorted(req.json(optional_body=True))},
                 status=201)


api.get("/api/v1/direct", access=Access.PUBLIC, direct=True)(answer)
api.get("/api/v1/through-flask", access=Access.PUBLIC)(answer)
api.post("/api/v1/direct", access=Access.PUBLIC)(take)
api.post("/api/v1/through-flask", access=Access.PUBLIC)(take)


def beat(req: Request) -> Reply:
    return Reply({"flaskContext": flask.has_request_context(), "id": req.param("id"), "c": req.query("c")})


def same(req: Request) -> Reply:
    if req.query("refuse"):
        raise Forbidden("refused here", error="forbidden")
    return Reply({"cookie": req.raw.cookies.get("c")}, headers={"X-Extra": "1", "cache-control": "private"})


# each direct route beside a twin through Flask
api.get("/api/v1/same", access=Access.PUBLIC, direct=True)(same)
api.get("/api/v1/flask-same", access=Access.PUBLIC)(same)
for prefix, direct in (("/api/v1/items", True), ("/api/v1/flask-items", False)):
    api.post(prefix + "/{id}/beat", access=Access.PUBLIC, direct=direct)(beat)
    api.put(prefix + "/{id}/beat", access=Access.PUBLIC)(take)  # another method of a direct path
    api.post(prefix + "/{id}/take", access=Access.PUBLIC, direct=direct)(take)


@functions_framework.http
def handle(request):
    return api(request)
'''


@pytest.fixture(scope="module")
def base(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from functions_framework import create_app

    from streamspace.local.server import BackgroundServer

    source = Path(tmp_path_factory.mktemp("direct")) / "main.py"
    source.write_text(SOURCE)
    server = BackgroundServer(create_app(target="handle", source=str(source))).start()
    yield server.url
    server.stop()


def _get(url: str, **kw: object) -> requests.Response:
    return requests.get(url, headers={"Cookie": "c=v", "X-Forwarded-Host": "a.example"}, timeout=30, **kw)


def test_a_direct_route_skips_flask_and_answers_like_any_other_route(base: str) -> None:
    direct, through_flask = _get(base + "/api/v1/direct"), _get(base + "/api/v1/through-flask")
    assert direct.status_code == through_flask.status_code == 200
    assert direct.json() == {"flaskContext": False, "cookie": "v", "host": "a.example"}
    assert through_flask.json() == {"flaskContext": True, "cookie": "v", "host": "a.example"}
    for name in ("Content-Type", "X-Content-Type-Options", "Cache-Control", "X-Extra"):
        assert direct.headers[name] == through_flask.headers[name]
    assert len(direct.headers["X-Request-Id"]) >= 8


def test_only_the_exact_path_takes_the_direct_lane(base: str) -> None:
    # The Api accepts a trailing slash; that request comes through Flask, to the same answer.
    assert _get(base + "/api/v1/direct/").json()["flaskContext"] is True


def _same_answer(one: requests.Response, other: requests.Response) -> None:
    assert one.status_code == other.status_code
    assert one.content == other.content
    for name in ("Content-Type", "Content-Length", "X-Content-Type-Options", "Cache-Control", "Allow"):
        assert one.headers.get(name) == other.headers.get(name), name


def test_only_the_direct_routes_own_method_takes_the_direct_lane(base: str) -> None:
    """The lane is for the hot reads: a write on a direct path (POST /api/v1/sessions, POST
    /api/v1/templates) goes through Flask like any other route, with everything a handler may need
    of it (flask.request, the app's config, its WebSocket rules), and answers as it always did."""
    created = requests.post(base + "/api/v1/direct", json={"a": 1}, timeout=30)
    assert created.status_code == 201
    assert created.json() == {"flaskContext": True, "fields": ["a"]}
    # HEAD runs the GET route and stays on the lane: the same headers, no body.
    head, through_flask = requests.head(base + "/api/v1/direct", timeout=30), requests.head(
        base + "/api/v1/through-flask", timeout=30)
    assert head.status_code == through_flask.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(len(requests.get(base + "/api/v1/direct", timeout=30).content))


CHUNKED = "chunked"  # the body sent with Transfer-Encoding: chunked, 17 chunks of 64 KiB (over the limit)


@pytest.mark.parametrize("method, body, content_type", [
    ("POST", b'{"a": 1}', "text/plain"),  # 415
    ("POST", b'{"a":', "application/json"),  # 400
    ("POST", b"x" * (1024 * 1024 + 1), "application/json"),  # 413 (declared length)
    ("POST", CHUNKED, "application/json"),  # 413 (no length declared)
    ("OPTIONS", None, None),  # a CORS preflight
    ("DELETE", None, None),  # 405
])
def test_every_method_on_a_direct_path_is_answered_as_on_any_other_path(base: str, method: str,
                                                                        body: bytes | str | None,
                                                                        content_type: str | None) -> None:
    def call(path: str) -> requests.Response:
        headers = {"Origin": "http://elsewhere.example", "Access-Control-Request-Method": "POST"}
        if content_type:
            headers["Content-Type"] = content_type
        data = iter([b"x" * 65536] * 17) if body == CHUNKED else body
        return requests.request(method, base + path, data=data, headers=headers, timeout=30)

    direct, through_flask = call("/api/v1/direct"), call("/api/v1/through-flask")
    assert direct.status_code in (204, 400, 405, 413, 415), direct.text
    if direct.status_code == 405:  # its message names the path
        assert direct.headers["Allow"] == through_flask.headers["Allow"] == "GET, POST"
    else:
        _same_answer(direct, through_flask)


def test_a_path_spelled_with_an_escaped_slash_is_the_same_path_on_either_lane(base: str) -> None:
    # The server decodes %2F into the path it hands on (PATH_INFO), for the lane and Flask alike.
    assert _get(base + "/api/v1%2Fdirect").json()["flaskContext"] is False
    assert _get(base + "/api/v1%2Fthrough-flask").json()["flaskContext"] is True


@pytest.mark.parametrize("path", ["/api/v1/direct", "/api/v1/through-flask", "/api/v1/items/s-1/take"])
def test_no_more_of_a_body_is_read_than_the_limit_whatever_the_client_declares(base: str, path: str) -> None:
    """A client declares 50 MB and sends a little more than the 1 MiB limit: the answer (413) comes
    without the server waiting for the rest. functions-framework's after-request hook reads a whole
    body into memory after the answer; before the cap it waited for all 50 MB, and a client that
    kept sending held a worker thread and its memory as long as it liked."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as conn:
        conn.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: 50000000\r\n\r\n".encode())
        conn.sendall(b"x" * (1024 * 1024 + 1))
        try:
            head = conn.recv(64)
        except TimeoutError:
            pytest.fail("no answer within 60 s: the server waits for the rest of the declared body")
    assert head.startswith(b"HTTP/1.1 413"), head


def test_a_direct_route_refuses_and_maps_errors_as_the_layer_does(base: str) -> None:
    direct, through_flask = _get(base + "/api/v1/direct?refuse=1"), _get(base + "/api/v1/direct/?refuse=1")
    assert direct.status_code == through_flask.status_code == 403
    assert direct.json() == through_flask.json()
    assert direct.json()["error"] == "forbidden"
    wrong = requests.put(base + "/api/v1/direct", timeout=30)
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "GET, POST"


def test_a_direct_route_is_counted_in_the_functions_metrics(base: str) -> None:
    _get(base + "/api/v1/direct")
    metrics = requests.get(base + "/metrics", timeout=30).text
    assert 'route="/api/v1/direct"' in metrics


def _raw(base: str, method: str, path: str) -> tuple[int, str, list[tuple[str, str]], bytes]:
    """Status, reason, every header in the order it came (Date and the request id's value left out),
    and the body, as the server wrote them."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, headers={"Cookie": "c=v", "X-Forwarded-Host": "a.example"})
        answer = conn.getresponse()
        headers = [(name, "<id>" if name == "X-Request-Id" else value) for name, value in answer.getheaders()
                   if name != "Date"]
        return answer.status, answer.reason, headers, answer.read()
    finally:
        conn.close()


@pytest.mark.parametrize("method, query", [("GET", ""), ("GET", "?refuse=1"), ("HEAD", ""), ("HEAD", "?refuse=1")])
def test_the_lane_writes_the_same_status_line_headers_and_body_as_flask(base: str, method: str, query: str) -> None:
    """The lane writes a JSON answer straight to the server instead of building werkzeug's response:
    the same bytes, headers in the same order, a header of the reply replacing the layer's own
    whatever its case (Cache-Control here), and none for HEAD."""
    direct = _raw(base, method, "/api/v1/same" + query)
    through_flask = _raw(base, method, "/api/v1/flask-same" + query)
    assert direct == through_flask
    assert direct[0] == (403 if query else 200)
    assert {name.lower(): value for name, value in direct[2]}["cache-control"] == ("no-store" if query else "private")
    assert (direct[3] == b"") is (method == "HEAD")


def test_a_direct_route_with_parameters_skips_flask_and_answers_like_its_twin(base: str) -> None:
    direct = requests.post(base + "/api/v1/items/s-1/beat?c=abc", timeout=30)
    through_flask = requests.post(base + "/api/v1/flask-items/s-1/beat?c=abc", timeout=30)
    assert direct.status_code == through_flask.status_code == 200
    assert direct.json() == {"flaskContext": False, "id": "s-1", "c": "abc"}
    assert through_flask.json() == {"flaskContext": True, "id": "s-1", "c": "abc"}
    for name in ("Content-Type", "X-Content-Type-Options", "Cache-Control"):
        assert direct.headers[name] == through_flask.headers[name]


def test_only_the_declared_method_on_the_declared_pattern_takes_the_lane(base: str) -> None:
    # another method of the same path: through Flask, to its own route
    put = requests.put(base + "/api/v1/items/s-1/beat", json={"a": 1}, timeout=30)
    assert put.status_code == 201 and put.json() == {"flaskContext": True, "fields": ["a"]}
    # the Api accepts a trailing slash; that request comes through Flask, to the same route
    slash = requests.post(base + "/api/v1/items/s-1/beat/", timeout=30)
    assert slash.status_code == 200 and slash.json()["flaskContext"] is True
    # a method no route of the path has, and a path no route has: the same refusals either way
    for method, tail in (("GET", "/s-1/beat"), ("DELETE", "/s-1/beat"), ("POST", "/s-1/x/beat"), ("POST", "//beat")):
        direct = requests.request(method, base + "/api/v1/items" + tail, timeout=30)
        through_flask = requests.request(method, base + "/api/v1/flask-items" + tail, timeout=30)
        assert direct.status_code in (404, 405), (method, tail)
        assert direct.json()["error"] == through_flask.json()["error"]
        assert direct.headers.get("Allow") == through_flask.headers.get("Allow")


@pytest.mark.parametrize("kwargs", [
    {"data": b'{"a": 1}', "headers": {"Content-Type": "text/plain"}},  # 415
    {"data": b'{"a":', "headers": {"Content-Type": "application/json"}},  # 400
    {"data": b"x" * (1024 * 1024 + 1), "headers": {"Content-Type": "application/json"}},  # 413, declared
    {"chunks": 17, "headers": {"Content-Type": "application/json"}},  # 413, chunked: no length declared
    {"data": b'{"a": 1, "b": 2}', "headers": {"Content-Type": "application/json"}},  # 201
], ids=["media-type", "bad-json", "declared-too-large", "chunked-too-large", "accepted"])
def test_the_body_limit_and_body_errors_hold_on_the_lane(base: str, kwargs: dict) -> None:
    """A direct route that reads a body reads it through the Api's own limit (MAX_BODY_BYTES,
    1 MiB here), not Flask's MAX_CONTENT_LENGTH, which needs an app context the lane does not make."""
    def call(prefix: str) -> requests.Response:
        sent = dict(kwargs)
        if "chunks" in sent:  # a fresh generator per request: requests sends it chunked
            sent["data"] = iter([b"x" * 65536] * sent.pop("chunks"))
        return requests.post(base + prefix + "/s-1/take", timeout=60, **sent)

    direct, through_flask = call("/api/v1/items"), call("/api/v1/flask-items")
    assert direct.status_code in (201, 400, 413, 415)
    if direct.status_code == 201:
        assert direct.json() == {"flaskContext": False, "fields": ["a", "b"]}
        assert through_flask.json() == {"flaskContext": True, "fields": ["a", "b"]}
    else:
        _same_answer(direct, through_flask)
