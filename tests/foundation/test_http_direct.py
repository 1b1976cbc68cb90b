"""Direct routes (Api.route(direct=True)): answered from the WSGI layer of the app functions-framework
builds, without Flask's request dispatch, and otherwise exactly like every other route: the same
headers, errors, method rule and metrics. Served over real HTTP from a function source."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from streamspace.http import Access, Api

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


api.get("/api/v1/direct", access=Access.PUBLIC, direct=True)(answer)
api.get("/api/v1/through-flask", access=Access.PUBLIC)(answer)


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


def test_a_direct_route_refuses_and_maps_errors_as_the_layer_does(base: str) -> None:
    direct, through_flask = _get(base + "/api/v1/direct?refuse=1"), _get(base + "/api/v1/direct/?refuse=1")
    assert direct.status_code == through_flask.status_code == 403
    assert direct.json() == through_flask.json()
    assert direct.json()["error"] == "forbidden"
    wrong = requests.post(base + "/api/v1/direct", timeout=30)
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "GET"


def test_a_direct_route_is_counted_in_the_functions_metrics(base: str) -> None:
    _get(base + "/api/v1/direct")
    metrics = requests.get(base + "/metrics", timeout=30).text
    assert 'route="/api/v1/direct"' in metrics


def test_a_direct_route_takes_no_path_parameters() -> None:
    with pytest.raises(TypeError, match="no path parameters"):
        Api("direct-echo").get("/api/v1/items/{id}", access=Access.PUBLIC, direct=True)
