"""Deny by default: every route of every HTTP function is in the reviewed access table, the only
routes open without a token are the contract's public ones, and every other route answers 401
without credentials (and 403 with too small a role) over real HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests

from .conftest import make_user, token_for
from .route_table import committed_lines, current_lines, diff

REGENERATE = "python -m tests.identity.route_table --write"
# The contract's public routes (no token) plus each function's built-ins, single sign-on (whose
# callback and code exchange prove themselves with state, PKCE and one-time codes), the second login
# step (its one-time first-step token) and the SAML stubs.
PUBLIC = {
    ("GET", "/health"), ("GET", "/version"), ("GET", "/api/v1/health"), ("GET", "/api/v1/version"),
    ("GET", "/metrics"), ("GET", "/api/v1/openapi.json"),
    ("POST", "/api/v1/auth/login"), ("POST", "/api/v1/auth/refresh"),
    ("GET", "/api/v1/auth/oidc/login"), ("GET", "/api/v1/auth/oidc/callback"), ("POST", "/api/v1/auth/oidc/exchange"),
    ("GET", "/api/v1/auth/methods"), ("POST", "/api/v1/auth/login/totp"), ("POST", "/api/v1/auth/login/totp/enroll"),
    ("GET", "/api/v1/auth/saml/{rest}"), ("POST", "/api/v1/auth/saml/{rest}"),
}
# Public to the Api but authenticating the caller itself (forward-auth of session hosts: a Bearer
# token or the session cookie): it must refuse a request without credentials like any other.
SELF_AUTHENTICATING = {("GET", "/api/v1/auth/session-check")}
SAMPLE_ID = "00000000-0000-4000-8000-000000000000"


def _routes() -> list[tuple[str, object]]:
    from streamspace.functions import http_apis

    return [(api.function, route) for api in http_apis() for route in api.routes]


def _concrete(path: str) -> str:
    return re.sub(r"{\w+}", SAMPLE_ID, path)


def test_every_route_is_in_the_reviewed_access_table() -> None:
    changes = diff(committed_lines(), current_lines())
    assert not changes, ("routes differ from tests/identity/route_access.txt (review, then regenerate with `"
                         + REGENERATE + "`):\n" + "\n".join(changes))


def test_only_the_contracts_public_routes_are_public() -> None:
    public = {(route.method, route.path) for _, route in _routes() if route.access.value == "public"}
    assert public <= PUBLIC | SELF_AUTHENTICATING, f"unexpected public routes: {sorted(public - PUBLIC)}"


@pytest.fixture(scope="module")
def servers(db_url: str) -> Iterator[dict[str, str]]:
    """Every HTTP function on its own real HTTP port (no gateway: each function's own routes), with
    a webhook secret configured so that signed routes can check (and refuse) signatures."""
    import os

    from streamspace.config import reset_environment
    from streamspace.functions import discover
    from streamspace.local.gateway import load_function_app
    from streamspace.local.server import BackgroundServer

    saved = os.environ.get("WEBHOOK_SECRET")
    os.environ["WEBHOOK_SECRET"] = "route-access-webhook-secret"
    reset_environment()
    started = {info.name: BackgroundServer(load_function_app(info.name)).start()
               for info in discover() if info.kind == "http"}
    yield {name: server.url for name, server in started.items()}
    for server in started.values():
        server.stop()
    if saved is None:
        os.environ.pop("WEBHOOK_SECRET", None)
    else:
        os.environ["WEBHOOK_SECRET"] = saved
    reset_environment()


def test_every_protected_route_answers_401_without_credentials(servers: dict[str, str]) -> None:
    failures = []
    for function, route in _routes():
        if route.access.value == "public" and (route.method, route.path) not in SELF_AUTHENTICATING:
            continue
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            resp = requests.request(route.method, servers[function] + _concrete(route.path), json={},
                                    headers=headers, timeout=10, stream=True)
            if resp.status_code != 401 or (route.access.needs_token
                                           and not resp.headers.get("WWW-Authenticate", "").startswith("Bearer")):
                failures.append(f"{function} {route.method} {route.path} -> {resp.status_code}")
            resp.close()
    assert not failures, "\n".join(failures)


def test_routes_above_the_user_role_answer_403_to_a_user(servers: dict[str, str]) -> None:
    user_id = make_user("route-checker")
    token = token_for(user_id, "route-checker", role="admin")  # the database, not the token, decides the role
    failures = []
    for function, route in _routes():
        if route.access.value not in ("operator", "admin"):
            continue
        resp = requests.request(route.method, servers[function] + _concrete(route.path), json={},
                                headers={"Authorization": f"Bearer {token}"}, timeout=10)
        if resp.status_code != 403:
            failures.append(f"{function} {route.method} {route.path} -> {resp.status_code}")
    assert not failures, "\n".join(failures)


def test_cors_is_an_allowlist(db_url: str) -> None:
    """Only configured origins get CORS headers; preflight from others gets none."""
    import os

    from streamspace.config import reset_environment
    from streamspace.local.gateway import load_function_app
    from streamspace.local.server import BackgroundServer

    os.environ["CORS_ALLOWED_ORIGINS"] = "https://ui.example.com"
    reset_environment()
    server = BackgroundServer(load_function_app("auth")).start()
    try:
        allowed = requests.options(f"{server.url}/api/v1/auth/login", timeout=10,
                                   headers={"Origin": "https://ui.example.com",
                                            "Access-Control-Request-Method": "POST"})
        assert allowed.status_code == 204
        assert allowed.headers["Access-Control-Allow-Origin"] == "https://ui.example.com"
        assert allowed.headers["Vary"] == "Origin"
        for origin in ("https://evil.example.com", "https://ui.example.com.evil.com", "null"):
            other = requests.options(f"{server.url}/api/v1/auth/login", timeout=10,
                                     headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
            assert "Access-Control-Allow-Origin" not in other.headers, origin
            got = requests.get(f"{server.url}/api/v1/auth/me", headers={"Origin": origin}, timeout=10)
            assert got.status_code == 401 and "Access-Control-Allow-Origin" not in got.headers
    finally:
        server.stop()
        os.environ.pop("CORS_ALLOWED_ORIGINS", None)
        reset_environment()
