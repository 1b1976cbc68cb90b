"""auth-check over real HTTP, through the production path routing: only a session's owner (or an
admin) reaches its desktop; one SQL statement and no Kubernetes request per check."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from streamspace.db import execute, fetch_one, statement_count

from .reconcile_helpers import NS

PATH = "/api/v1/auth/session-check"


def add_user(username: str, role: str = "user", active: bool = True) -> str:
    found = fetch_one("INSERT INTO users (username, email, role, active, password_hash)"
                      " VALUES (%s, %s, %s, %s, 'x') RETURNING id::text AS id",
                      (username, f"{username}@example.com", role, active))
    assert found is not None
    return str(found["id"])


def token(user_id: str, username: str, role: str = "user") -> str:
    from streamspace.auth.tokens import issue_access_token

    return issue_access_token(user_id=user_id, username=username, role=role, groups=[], family_id=None)[0]


def add_session(name: str, user_id: str | None, username: str, state: str = "running") -> None:
    execute("INSERT INTO sessions (namespace, name, user_id, username, template, state)"
            " VALUES (%s, %s, %s, %s, 'firefox', %s)", (NS, name, user_id, username, state))


@pytest.fixture(scope="module")
def people(db_url):
    ids = {name: add_user(name, role) for name, role in
           (("jane", "user"), ("kim", "user"), ("root", "admin"))}
    ids["gone"] = add_user("gone", active=False)
    add_session("jane-firefox-abc123", ids["jane"], "jane")
    add_session("jane-kubectl", None, "jane")  # applied with kubectl: owner known by name only
    add_session("jane-ended", ids["jane"], "jane", state="terminated")
    add_session("gone-firefox", ids["gone"], "gone")
    return {name: token(uid, name, "admin" if name == "root" else "user") for name, uid in ids.items()}


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


def test_the_owner_is_admitted_with_a_bearer_token_or_the_cookie(url, people):
    status, headers = check(url, {**host("jane-firefox-abc123"), "Authorization": f"Bearer {people['jane']}"})
    assert status == 200
    assert headers["X-Auth-Request-User"] == "jane"
    cookie = {**host("jane-firefox-abc123"), "Cookie": f"streamspace_session={people['jane']}"}
    assert check(url, cookie)[0] == 200
    # a stream's own Basic credentials do not hide the cookie
    assert check(url, {**cookie, "Authorization": "Basic dXNlcjpwYXNz"})[0] == 200
    assert check(url, {**host("jane-kubectl"), "Authorization": f"Bearer {people['jane']}"})[0] == 200


def test_nginx_forwards_the_original_url(url, people, setting):
    setting(INGRESS_CONTROLLER="nginx")
    headers = {"X-Original-URL": "https://jane-firefox-abc123.streamspace.local/websockify?x=1",
               "Authorization": f"Bearer {people['jane']}"}
    assert check(url, headers)[0] == 200


def test_an_admin_is_admitted(url, people):
    assert check(url, {**host("jane-firefox-abc123"), "Authorization": f"Bearer {people['root']}"})[0] == 200


def test_everyone_else_is_refused(url, people):
    jane = {"Authorization": f"Bearer {people['jane']}"}
    assert check(url, {**host("jane-firefox-abc123"), "Authorization": f"Bearer {people['kim']}"})[0] == 403
    assert check(url, {**host("jane-kubectl"), "Authorization": f"Bearer {people['kim']}"})[0] == 403
    assert check(url, host("jane-firefox-abc123"))[0] == 401
    assert check(url, {**host("jane-firefox-abc123"), "Authorization": "Bearer not-a-token"})[0] == 401
    assert check(url, {**host("jane-firefox-abc123"), "Cookie": "streamspace_session=forged"})[0] == 401
    assert check(url, {**host("no-such-session"), **jane})[0] == 403
    assert check(url, {**host("jane-ended"), **jane})[0] == 403
    assert check(url, {"X-Forwarded-Host": "jane-firefox-abc123.evil.example", **jane})[0] == 403
    assert check(url, {"X-Forwarded-Host": "streamspace.local", **jane})[0] == 403
    assert check(url, jane)[0] == 403  # no forwarded host at all
    assert check(url, {**host("gone-firefox"), "Authorization": f"Bearer {people['gone']}"})[0] == 403


def test_a_check_is_one_sql_statement_and_no_kubernetes_request(url, people, sim):
    headers = {**host("jane-firefox-abc123"), "Authorization": f"Bearer {people['jane']}"}
    check(url, headers)
    sim.clear_requests()
    before = statement_count()
    assert check(url, headers)[0] == 200
    assert statement_count() - before == 1
    assert sim.requests == []
