"""The shared HTTP layer, through real HTTP: health, version, errors for bad input, and that the
process keeps serving after each of them."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
import requests

from streamspace.http import Access, Api, Reply, Request
from streamspace.http.errors import MethodNotAllowed
from streamspace.local.server import BackgroundServer


def _echo_api() -> Api:
    """A real Api with a body route, served exactly like a function's."""
    api = Api("echo")

    @api.post("/api/v1/echo", access=Access.PUBLIC)
    def echo(req: Request) -> Reply:
        body = req.json(allowed={"name", "count"}, required=("name",))
        return Reply({"got": body}, status=201)

    @api.get("/api/v1/items/{id}", access=Access.PUBLIC)
    def item(req: Request) -> dict:
        return {"id": req.param("id"), "limit": req.page()[0]}

    @api.get("/api/v1/private", access=Access.ADMIN)
    def private(req: Request) -> dict:
        return {"caller": req.caller.username}

    @api.get("/api/v1/forgets-standing", access=Access.USER, standing_in_statement=True)
    def forgets_standing(req: Request) -> dict:
        return {"claimed": req.claimant.user_id}  # answers without ever reading the caller's standing

    return api


@pytest.fixture(scope="module")
def base(db_url: str) -> Iterator[str]:
    import flask

    api = _echo_api()
    app = flask.Flask("echo")
    app.add_url_rule("/", "root", lambda: api(flask.request), methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    app.add_url_rule("/<path:path>", "all", lambda path: api(flask.request),
                     methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    server = BackgroundServer(app).start()
    yield server.url
    server.stop()


def test_health_answers_healthy_with_the_contract_body(base: str) -> None:
    for path in ("/health", "/api/v1/health"):
        response = requests.get(base + path, timeout=10)
        assert response.status_code == 200
        assert response.json() == {"status": "healthy", "service": "streamspace-api"}


def test_version_reports_build_values(base: str) -> None:
    for path in ("/version", "/api/v1/version"):
        body = requests.get(base + path, timeout=10).json()
        assert set(body) == {"version", "commit", "buildDate", "api"}
        assert body["api"] == "v1"


def test_valid_body_is_accepted(base: str) -> None:
    response = requests.post(base + "/api/v1/echo", json={"name": "x", "count": 2}, timeout=10)
    assert response.status_code == 201
    assert response.json() == {"got": {"name": "x", "count": 2}}
    assert len(response.headers["X-Request-Id"]) >= 8


@pytest.mark.parametrize(
    ("kwargs", "status", "error"),
    [
        ({"data": "{not json", "headers": {"Content-Type": "application/json"}}, 400, "invalid body"),
        ({"data": "[1, 2]", "headers": {"Content-Type": "application/json"}}, 400, "invalid body"),
        ({"data": "name=x", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}, 415,
         "unsupported media type"),
        ({"json": {"count": 1}}, 400, "invalid name"),
        ({"json": {"name": "x", "role": "admin"}}, 400, "invalid role"),
        ({"data": json.dumps({"name": "x" * (2 * 1024 * 1024)}), "headers": {"Content-Type": "application/json"}},
         413, "payload too large"),
        ({}, 400, "invalid body"),
    ],
)
def test_bad_input_gets_a_clear_4xx_and_the_process_keeps_serving(base: str, kwargs: dict, status: int,
                                                                  error: str) -> None:
    response = requests.post(base + "/api/v1/echo", timeout=10, **kwargs)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error and body["message"]
    assert requests.get(base + "/health", timeout=10).status_code == 200


def test_oversized_chunked_body_without_content_length_is_refused(base: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    response = requests.post(base + "/api/v1/echo", data=chunks(), headers={"Content-Type": "application/json"},
                             timeout=10)
    assert response.status_code == 413


def test_unknown_route_and_wrong_method(base: str) -> None:
    missing = requests.get(base + "/api/v1/nothing-here", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"] == "not found"
    wrong = requests.delete(base + "/api/v1/echo", timeout=10)
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "POST"


def test_query_parameters_are_validated(base: str) -> None:
    assert requests.get(base + "/api/v1/items/a?limit=5", timeout=10).json() == {"id": "a", "limit": 5}
    response = requests.get(base + "/api/v1/items/a?limit=5000", timeout=10)
    assert response.status_code == 400 and response.json()["error"] == "invalid limit"


def test_non_public_route_without_token_is_401_with_challenge(base: str) -> None:
    response = requests.get(base + "/api/v1/private", timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_metrics_are_exposed_in_prometheus_format(base: str) -> None:
    requests.get(base + "/health", timeout=10)
    text = requests.get(base + "/metrics", timeout=10).text
    assert 'streamspace_http_requests_total{function="echo",method="GET",route="/health",status="200"}' in text


def test_health_is_503_naming_the_database_when_it_is_down(base: str, db_url: str) -> None:
    from tests.conftest import use_database

    try:
        use_database("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
        from streamspace.config import environment

        assert environment().database_url is not None
        import flask

        api = Api("down")
        with flask.Flask("down").test_request_context("/health"):
            response = api(flask.request)
        assert response.status_code == 503
        body = response.get_json()
        assert body["status"] == "unhealthy" and body["error"] == "database unreachable"
        assert "database" in body["dependencies"]
    finally:
        use_database(db_url)
    assert requests.get(base + "/health", timeout=10).status_code == 200
    assert os.environ["DATABASE_URL"] == db_url


def test_a_route_that_reads_standing_itself_and_forgets_to_is_refused_not_answered(base: str, db_url: str) -> None:
    """standing_in_statement moves the caller's standing check into the handler's statement; a
    handler that never records it must fail closed (500, nothing of its answer sent)."""
    from tests.conftest import make_user, token_for

    user_id = make_user("forgetful")
    token = token_for(user_id, "forgetful")
    answer = requests.get(base + "/api/v1/forgets-standing", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code == 500 and "claimed" not in answer.text
    assert requests.get(base + "/api/v1/forgets-standing", timeout=30).status_code == 401


def test_standing_in_statement_is_refused_on_routes_with_a_role_rule() -> None:
    api = Api("echo")
    with pytest.raises(TypeError, match="Access.USER routes only"):
        api.get("/api/v1/admin-only", access=Access.ADMIN, standing_in_statement=True)


def test_a_route_without_parameters_is_found_by_lookup_only_when_no_earlier_route_takes_its_path() -> None:
    """Api.match finds a parameterless route by one lookup; the first declared route that fits still wins."""
    api = Api("match")

    def handler(_: object) -> dict:
        return {}

    api.get("/api/v1/items/{id}", access=Access.PUBLIC)(handler)
    api.get("/api/v1/items/stats", access=Access.PUBLIC)(handler)  # shadowed: {id} was declared first
    api.get("/api/v1/stats", access=Access.PUBLIC)(handler)
    api.post("/api/v1/stats", access=Access.PUBLIC)(handler)
    assert api.match("GET", "/api/v1/items/stats")[0].path == "/api/v1/items/{id}"
    assert api.match("GET", "/api/v1/items/stats")[1] == {"id": "stats"}
    assert api.match("GET", "/api/v1/stats")[0].path == "/api/v1/stats"
    assert api.match("HEAD", "/api/v1/stats")[0].method == "GET"
    assert api.match("GET", "/api/v1/stats/")[0].path == "/api/v1/stats"
    with pytest.raises(MethodNotAllowed, match="PUT is not allowed"):
        api.match("PUT", "/api/v1/stats")
