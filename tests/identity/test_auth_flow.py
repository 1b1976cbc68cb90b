"""Login, refresh rotation and reuse detection, logout, password change, disabled users, SSO stubs."""

from __future__ import annotations

import re

import requests

from .conftest import audit_rows, bearer, fresh_ip, login, make_user

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
USER_KEYS = {"id", "username", "email", "fullName", "role", "provider", "active", "createdAt", "updatedAt",
             "lastLogin", "groups"}


def refresh(url: str, token: str, field: str = "refreshToken") -> requests.Response:
    return requests.post(f"{url}/api/v1/auth/refresh", json={field: token}, timeout=10)


def test_login_answers_the_contract_shape_and_me_returns_the_user(url: str) -> None:
    user_id = make_user("alice", password="alice-password")
    resp = login(url, "alice", "alice-password")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"token", "refreshToken", "expiresAt", "user"}
    assert RFC3339.match(body["expiresAt"])
    assert set(body["user"]) == USER_KEYS
    assert body["user"]["id"] == user_id and body["user"]["role"] == "user" and body["user"]["lastLogin"]
    assert "password" not in resp.text.lower().replace("password\":", "")  # no hash anywhere
    assert "$argon2" not in resp.text
    me = requests.get(f"{url}/api/v1/auth/me", headers=bearer(body["token"]), timeout=10)
    assert me.status_code == 200 and me.json()["username"] == "alice"
    also = requests.get(f"{url}/api/v1/users/me", headers=bearer(body["token"]), timeout=10)
    assert also.status_code == 200 and also.json()["id"] == user_id


def test_access_token_carries_the_documented_claims(url: str) -> None:
    import jwt

    make_user("claims", password="claims-password")
    body = login(url, "claims", "claims-password").json()
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert {"sub", "username", "role", "groups", "iss", "aud", "iat", "exp", "jti", "sid"} <= set(claims)
    assert jwt.get_unverified_header(body["token"])["alg"] == "HS256"


def test_unknown_user_and_wrong_password_get_the_same_401(url: str) -> None:
    make_user("bob", password="bob-password")
    wrong = login(url, "bob", "not-his-password")
    unknown = login(url, "nobody-here", "whatever-password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"error": "invalid credentials", "message": "invalid username or password"}
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    failed = audit_rows("auth.login.failed")
    assert {r["target"] for r in failed} >= {"bob", "nobody-here"}
    assert all(r["actor"] == "anonymous" and r["client_ip"] for r in failed)


def test_disabled_user_is_refused_at_login_and_with_an_unexpired_token(url: str) -> None:
    from streamspace.db import execute

    make_user("carol", password="carol-password")
    token = login(url, "carol", "carol-password").json()["token"]
    execute("UPDATE users SET active = false WHERE username = 'carol'")
    resp = login(url, "carol", "carol-password")
    assert resp.status_code == 403 and resp.json()["error"] == "account disabled"
    # A wrong password for a disabled account is still just a 401 (no hint that the account exists).
    assert login(url, "carol", "wrong-password").status_code == 401
    me = requests.get(f"{url}/api/v1/auth/me", headers=bearer(token), timeout=10)
    assert me.status_code == 403 and me.json()["error"] == "account disabled"


def test_refresh_rotates_and_reuse_revokes_the_whole_family(url: str) -> None:
    make_user("dave", password="dave-password")
    first = login(url, "dave", "dave-password").json()
    second = refresh(url, first["refreshToken"])
    assert second.status_code == 200, second.text
    second_body = second.json()
    assert second_body["refreshToken"] != first["refreshToken"]
    assert set(second_body) == {"token", "refreshToken", "expiresAt", "user"}
    # The contract also accepts the refresh token under "token".
    third = refresh(url, second_body["refreshToken"], field="token")
    assert third.status_code == 200
    third_body = third.json()
    # Presenting the already-rotated first token: reuse. The family is revoked...
    reuse = refresh(url, first["refreshToken"])
    assert reuse.status_code == 401 and reuse.json()["error"] == "token reuse"
    # ...so the newest refresh token and every access token of that login stop working.
    assert refresh(url, third_body["refreshToken"]).status_code == 401
    for body in (first, second_body, third_body):
        me = requests.get(f"{url}/api/v1/auth/me", headers=bearer(body["token"]), timeout=10)
        assert me.status_code == 401, me.text
    assert audit_rows("auth.refresh.reuse", "dave")
    # A separate login is a separate family and still works.
    assert login(url, "dave", "dave-password").status_code == 200


def test_refresh_refuses_unknown_and_malformed_tokens(url: str) -> None:
    assert refresh(url, "not-a-real-token").status_code == 401
    resp = requests.post(f"{url}/api/v1/auth/refresh", json={"refreshToken": 12}, timeout=10)
    assert resp.status_code == 401
    resp = requests.post(f"{url}/api/v1/auth/refresh", json={"refreshToken": "x", "role": "admin"}, timeout=10)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid role"


def test_refresh_tokens_are_stored_only_as_hashes(url: str) -> None:
    import hashlib

    from streamspace.db import fetch_all

    make_user("erin", password="erin-password")
    body = login(url, "erin", "erin-password").json()
    rows = fetch_all("SELECT r.token_hash, r.expires_at - r.issued_at AS ttl FROM refresh_tokens r"
                     " JOIN users u ON u.id = r.user_id WHERE u.username = 'erin'")
    assert [bytes(r["token_hash"]) for r in rows] == [hashlib.sha256(body["refreshToken"].encode()).digest()]
    assert rows[0]["ttl"].days == 7


def test_logout_revokes_the_refresh_and_access_tokens(url: str) -> None:
    make_user("frank", password="frank-password")
    body = login(url, "frank", "frank-password").json()
    other = login(url, "frank", "frank-password").json()
    resp = requests.post(f"{url}/api/v1/auth/logout", headers=bearer(body["token"]), timeout=10)
    assert resp.status_code == 200 and "message" in resp.json()
    assert requests.get(f"{url}/api/v1/auth/me", headers=bearer(body["token"]), timeout=10).status_code == 401
    assert refresh(url, body["refreshToken"]).status_code == 401
    # Another login of the same user is untouched.
    assert requests.get(f"{url}/api/v1/auth/me", headers=bearer(other["token"]), timeout=10).status_code == 200
    assert audit_rows("auth.logout", "frank")
    # Without a token: 401.
    assert requests.post(f"{url}/api/v1/auth/logout", timeout=10).status_code == 401


def test_password_change_ends_other_logins_and_keeps_this_one(url: str) -> None:
    make_user("grace", password="grace-password")
    mine = login(url, "grace", "grace-password").json()
    elsewhere = login(url, "grace", "grace-password").json()
    short = requests.post(f"{url}/api/v1/auth/password", headers=bearer(mine["token"]),
                          json={"oldPassword": "grace-password", "newPassword": "short"}, timeout=10)
    assert short.status_code == 400 and short.json()["error"] == "invalid newPassword"
    wrong = requests.post(f"{url}/api/v1/auth/password", headers=bearer(mine["token"]),
                          json={"oldPassword": "not-it-at-all", "newPassword": "grace-new-password"}, timeout=10)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid oldPassword"
    ok = requests.post(f"{url}/api/v1/auth/password", headers=bearer(mine["token"]),
                       json={"oldPassword": "grace-password", "newPassword": "grace-new-password"}, timeout=10)
    assert ok.status_code == 200, ok.text
    assert requests.get(f"{url}/api/v1/auth/me", headers=bearer(mine["token"]), timeout=10).status_code == 200
    assert requests.get(f"{url}/api/v1/auth/me", headers=bearer(elsewhere["token"]), timeout=10).status_code == 401
    assert refresh(url, elsewhere["refreshToken"]).status_code == 401
    assert login(url, "grace", "grace-password").status_code == 401
    assert login(url, "grace", "grace-new-password").status_code == 200
    changed = audit_rows("auth.password.change", "grace")
    assert len(changed) == 1 and changed[0]["details"]["revokedLogins"] == 1
    assert "grace-new-password" not in str(changed[0]["details"])


def test_bcrypt_hash_is_accepted_once_and_upgraded_to_argon2id(url: str) -> None:
    import bcrypt

    from streamspace.db import execute, fetch_one

    make_user("heidi", password="placeholder-password")
    legacy = bcrypt.hashpw(b"heidi-password", bcrypt.gensalt(rounds=4)).decode()
    execute("UPDATE users SET password_hash = %s WHERE username = 'heidi'", (legacy,))
    assert login(url, "heidi", "heidi-password").status_code == 200
    row = fetch_one("SELECT password_hash FROM users WHERE username = 'heidi'")
    assert row is not None and row["password_hash"].startswith("$argon2id$")
    assert login(url, "heidi", "heidi-password").status_code == 200


def test_login_bodies_are_validated(url: str) -> None:
    def post(**kw) -> requests.Response:
        headers = {"X-Forwarded-For": fresh_ip(), **kw.pop("headers", {})}
        return requests.post(f"{url}/api/v1/auth/login", headers=headers, timeout=10, **kw)

    missing = post(json={"username": "alice"})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid password"
    extra = post(json={"username": "alice", "password": "alice-password", "role": "admin"})
    assert extra.status_code == 400 and extra.json()["error"] == "invalid role"
    typed = post(json={"username": ["alice"], "password": "alice-password"})
    assert typed.status_code == 400 and typed.json()["error"] == "invalid username"
    malformed = post(data="{not json", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"] == "invalid body"


def test_sso_paths_answer_501_when_not_configured_and_saml_points_at_oidc(url: str) -> None:
    for method, path in (("GET", "/api/v1/auth/oidc/login"), ("GET", "/api/v1/auth/oidc/callback")):
        resp = requests.request(method, f"{url}{path}", timeout=10)
        assert resp.status_code == 501, (path, resp.status_code)
        assert "single sign-on is not configured" in resp.json()["message"]
    for method, path in (("GET", "/api/v1/auth/saml/metadata"), ("POST", "/api/v1/auth/saml/acs")):
        resp = requests.request(method, f"{url}{path}", timeout=10)
        assert resp.status_code == 501 and "OpenID Connect" in resp.json()["message"]


def test_login_success_and_failure_are_audited_with_client_address(url: str) -> None:
    user_id = make_user("ivan", password="ivan-password")
    ip = fresh_ip()
    assert login(url, "ivan", "ivan-password", ip=ip).status_code == 200
    rows = audit_rows("auth.login", "ivan")
    assert rows and rows[-1]["client_ip"] == ip and rows[-1]["actor"] == "ivan"
    assert str(rows[-1]["actor_id"]) == user_id


def test_an_expired_refresh_token_is_refused(url: str) -> None:
    from streamspace.db import execute

    make_user("judy", password="judy-password")
    body = login(url, "judy", "judy-password").json()
    execute("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'"
            " WHERE user_id = (SELECT id FROM users WHERE username = 'judy')")
    resp = refresh(url, body["refreshToken"])
    assert resp.status_code == 401 and resp.json()["error"] == "token expired"
