"""auth-check over real HTTP, through the production path routing: only a session's owner (or an
admin) reaches its desktop; one SQL statement and no Kubernetes request per check."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from streamspace.db import execute, fetch_one, statement_count
from tests.conftest import desktop_cookie

from .reconcile_helpers import NS

PATH = "/api/v1/auth/session-check"


def add_user(username: str, role: str = "user", active: bool = True) -> str:
    found = fetch_one("INSERT INTO users (username, email, role, active, password_hash)"
                      " VALUES (%s, %s, %s, %s, 'x') RETURNING id::text AS id",
                      (username, f"{username}@example.com", role, active))
    assert found is not None
    return str(found["id"])


def add_session(name: str, user_id: str | None, username: str, state: str = "running") -> None:
    execute("INSERT INTO sessions (namespace, name, user_id, username, template, state)"
            " VALUES (%s, %s, %s, %s, 'firefox', %s)", (NS, name, user_id, username, state))


@pytest.fixture(scope="module")
def people(db_url):
    ids = {name: add_user(name, role) for name, role in
           (("jane", "user"), ("kim", "user"), ("root", "admin"))}
    ids["gone"] = add_user("gone")
    add_session("jane-firefox-abc123", ids["jane"], "jane")
    add_session("jane-kubectl", None, "jane")  # applied with kubectl: owner known by name only
    add_session("jane-ended", ids["jane"], "jane")
    add_session("kim-firefox", ids["kim"], "kim")
    add_session("gone-firefox", ids["gone"], "gone")
    cookies = {
        "jane": desktop_cookie(ids["jane"], "jane", "jane-firefox-abc123"),
        "jane-kubectl": desktop_cookie(ids["jane"], "jane", "jane-kubectl"),
        "jane-ended": desktop_cookie(ids["jane"], "jane", "jane-ended"),
        "kim": desktop_cookie(ids["kim"], "kim", "kim-firefox"),
        "root": desktop_cookie(ids["root"], "root", "jane-firefox-abc123", "admin"),
        "gone": desktop_cookie(ids["gone"], "gone", "gone-firefox"),
    }
    execute("UPDATE sessions SET state = 'terminated' WHERE name = 'jane-ended'")
    execute("UPDATE users SET active = false WHERE username = 'gone'")
    return cookies


@pytest.fixture(scope="module")
def url(serve, people):
    return serve("auth-check") + PATH


def check(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def host(session: str) -> dict[str, str]:
    return {"X-Forwarded-Host": f"{session}.streamspace.local"}


def cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"streamspace_desktop={value}"}


def test_the_owner_is_admitted_with_the_session_hosts_cookie(url, people):
    status, headers = check(url, {**host("jane-firefox-abc123"), **cookie(people["jane"])})
    assert status == 200
    assert headers["X-Auth-Request-User"] == "jane"
    # a stream's own Basic credentials do not hide the cookie
    assert check(url, {**host("jane-firefox-abc123"), **cookie(people["jane"]),
                       "Authorization": "Basic dXNlcjpwYXNz"})[0] == 200
    assert check(url, {**host("jane-kubectl"), **cookie(people["jane-kubectl"])})[0] == 200


def test_nginx_forwards_the_original_url(url, people, setting):
    setting(INGRESS_CONTROLLER="nginx")
    headers = {"X-Original-URL": "https://jane-firefox-abc123.streamspace.local/websockify?x=1",
               **cookie(people["jane"])}
    assert check(url, headers)[0] == 200


def test_an_admin_is_admitted_with_its_own_cookie_for_that_session(url, people):
    assert check(url, {**host("jane-firefox-abc123"), **cookie(people["root"])})[0] == 200


def test_a_users_api_token_is_never_a_desktop_credential(url, people):
    """The desktop receives every header and cookie the browser sends: the API token must not work
    there, or a desktop could be handed (and steal) a credential wider than its own session."""
    from tests.conftest import token_for

    jane_id = fetch_one("SELECT id::text AS id FROM users WHERE username = 'jane'")["id"]
    token = token_for(jane_id, "jane")
    assert check(url, {**host("jane-firefox-abc123"), "Authorization": f"Bearer {token}"})[0] == 401
    assert check(url, {**host("jane-firefox-abc123"), "Cookie": f"streamspace_session={token}"})[0] == 401
    assert check(url, {**host("jane-firefox-abc123"), **cookie(token)})[0] == 401


def test_everyone_else_is_refused(url, people):
    jane = cookie(people["jane"])
    assert check(url, {**host("jane-firefox-abc123"), **cookie(people["kim"])})[0] == 401  # kim's own session's
    assert check(url, {**host("kim-firefox"), **jane})[0] == 401  # jane's cookie copied to kim's host
    assert check(url, {**host("jane-kubectl"), **jane})[0] == 401  # ... or to another of jane's sessions
    assert check(url, host("jane-firefox-abc123"))[0] == 401
    assert check(url, {**host("jane-firefox-abc123"), **cookie("forged")})[0] == 401
    assert check(url, {**host("no-such-session"), **jane})[0] == 401
    assert check(url, {**host("jane-ended"), **cookie(people["jane-ended"])})[0] == 403
    assert check(url, {"X-Forwarded-Host": "jane-firefox-abc123.evil.example", **jane})[0] == 403
    assert check(url, {"X-Forwarded-Host": "streamspace.local", **jane})[0] == 401  # no grant for such a host
    assert check(url, jane)[0] == 403  # no forwarded host at all
    assert check(url, {**host("gone-firefox"), **cookie(people["gone"])})[0] == 403


def test_a_websocket_upgrade_is_checked_like_any_request(url, people):
    """CVE-2024-28179 (jupyter-server-proxy): upgrades skipped the auth check. Here the controller
    asks about the upgrade request like any other, and the answer is the same."""
    upgrade = {**host("jane-firefox-abc123"), "Upgrade": "websocket", "Connection": "Upgrade",
               "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
               "X-Forwarded-Uri": "/websockify"}
    assert check(url, upgrade)[0] == 401
    assert check(url, {**upgrade, **cookie(people["kim"])})[0] == 401
    assert check(url, {**upgrade, **cookie(people["jane"])})[0] == 200


def test_a_check_is_one_sql_statement_and_no_kubernetes_request(url, people, sim):
    headers = {**host("jane-firefox-abc123"), **cookie(people["jane"])}
    check(url, headers)
    sim.clear_requests()
    before = statement_count()
    assert check(url, headers)[0] == 200
    assert statement_count() - before == 1
    assert sim.requests == []
