"""Two-factor login with TOTP for local accounts: enrolment with a QR code, the two-step login,
recovery codes, replay, rate limits, the admin policy and the admin reset. Real HTTP, real Postgres.

Codes are computed for the step the server is in (or the next one, which the ±1 window accepts),
so a step boundary during a test cannot make it fail."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
import requests

from tests.conftest import make_user
from tests.identity.conftest import fresh_ip


@pytest.fixture(scope="module")
def url(serve) -> str:
    return serve("auth", "users", "config")


@pytest.fixture(scope="module")
def admin(url: str) -> dict[str, str]:
    make_user("totp-root", role="admin", password="root-password")
    body = password_login(url, "totp-root", "root-password")
    assert "token" in body, body
    return {"Authorization": f"Bearer {body['token']}"}


def password_login(url: str, username: str, password: str = "password123", ip: str | None = None) -> dict[str, Any]:
    answer = requests.post(f"{url}/api/v1/auth/login", json={"username": username, "password": password},
                           headers={"X-Forwarded-For": ip or fresh_ip()}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def second_step(url: str, body: dict[str, Any], ip: str | None = None) -> requests.Response:
    return requests.post(f"{url}/api/v1/auth/login/totp", json=body, headers={"X-Forwarded-For": ip or fresh_ip()},
                         timeout=10)


def code(secret: str, steps_ahead: int = 0) -> str:
    from streamspace.mfa.totp import STEP_SECONDS, code_at

    return code_at(secret, time.time() + steps_ahead * STEP_SECONDS)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def enrolled_user(url: str, username: str) -> tuple[str, list[str], str]:
    """A user with confirmed TOTP: (secret, recovery codes, the access token of the password login
    made before enrolling). The confirming code is of the current step."""
    make_user(username)
    token = password_login(url, username)["token"]
    secret = requests.post(f"{url}/api/v1/auth/totp/enroll", headers=bearer(token), timeout=10).json()["secret"]
    confirmed = requests.post(f"{url}/api/v1/auth/totp/confirm", json={"code": code(secret)}, headers=bearer(token),
                              timeout=10)
    assert confirmed.status_code == 200, confirmed.text
    return secret, confirmed.json()["recoveryCodes"], token


def audit(action: str, target: str) -> list[dict[str, Any]]:
    from streamspace.db import fetch_all

    return fetch_all("SELECT * FROM audit_log WHERE action = %s AND target = %s ORDER BY id", (action, target))


def test_enrolment_shows_a_qr_code_and_needs_a_first_code(url):
    make_user("enid")
    token = password_login(url, "enid")["token"]
    assert requests.get(f"{url}/api/v1/auth/totp", headers=bearer(token), timeout=10).json() == \
        {"enrolled": False, "required": False, "recoveryCodesLeft": 0}
    started = requests.post(f"{url}/api/v1/auth/totp/enroll", headers=bearer(token), timeout=10).json()
    assert started["otpauthUri"].startswith("otpauth://totp/StreamSpace:enid?secret=" + started["secret"])
    assert started["qrSvg"].startswith("<svg") and "path" in started["qrSvg"]
    wrong = requests.post(f"{url}/api/v1/auth/totp/confirm", json={"code": "000000"}, headers=bearer(token),
                          timeout=10)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid code"
    confirmed = requests.post(f"{url}/api/v1/auth/totp/confirm", json={"code": code(started["secret"])},
                              headers=bearer(token), timeout=10)
    assert confirmed.status_code == 200
    recovery = confirmed.json()["recoveryCodes"]
    assert len(recovery) == 10 and len(set(recovery)) == 10
    assert requests.get(f"{url}/api/v1/auth/totp", headers=bearer(token), timeout=10).json() == \
        {"enrolled": True, "required": False, "recoveryCodesLeft": 10}
    # Enrolling again over a confirmed secret is refused; nothing stored in the clear.
    assert requests.post(f"{url}/api/v1/auth/totp/enroll", headers=bearer(token), timeout=10).status_code == 409
    from streamspace.db import fetch_all

    stored = fetch_all("SELECT c.secret, r.code_hash FROM totp_credentials c JOIN users u ON u.id = c.user_id"
                       " JOIN totp_recovery_codes r ON r.user_id = u.id WHERE u.username = 'enid'")
    blob = b"".join(bytes(r["secret"]) + bytes(r["code_hash"]) for r in stored)
    assert started["secret"].encode() not in blob
    assert not any(c.replace("-", "").encode() in blob or c.encode() in blob for c in recovery)
    assert audit("auth.totp.enroll", "enid")


def test_login_takes_two_steps_and_the_first_token_works_only_for_the_second(url):
    secret, _, _ = enrolled_user(url, "tess")
    first = password_login(url, "tess")
    assert first["mfaRequired"] is True and first["enrolled"] is True and "token" not in first
    mfa_token = first["mfaToken"]
    # The first step's token is nobody's bearer token and no refresh token.
    assert requests.get(f"{url}/api/v1/auth/me", headers=bearer(mfa_token), timeout=10).status_code == 401
    assert requests.post(f"{url}/api/v1/auth/refresh", json={"refreshToken": mfa_token},
                         timeout=10).status_code == 401
    wrong = second_step(url, {"mfaToken": mfa_token, "code": "123456" if code(secret, 1) != "123456" else "654321"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid code"
    used = code(secret, 1)  # once: read again after a 30 s step boundary it would be another code
    done = second_step(url, {"mfaToken": mfa_token, "code": used})
    assert done.status_code == 200, done.text
    assert jwt.decode(done.json()["token"], options={"verify_signature": False})["sid"]
    assert requests.get(f"{url}/api/v1/auth/me", headers=bearer(done.json()["token"]), timeout=10).status_code == 200
    # The first-step token was spent.
    assert second_step(url, {"mfaToken": mfa_token, "code": used}).status_code == 401
    # The same code in a new login: replay, refused.
    replay = second_step(url, {"mfaToken": password_login(url, "tess")["mfaToken"], "code": used})
    assert replay.status_code == 401 and replay.json()["error"] == "invalid code"
    # So is an earlier step's code (the one that confirmed enrolment).
    earlier = second_step(url, {"mfaToken": password_login(url, "tess")["mfaToken"], "code": code(secret)})
    assert earlier.status_code == 401
    assert len(audit("auth.totp.failed", "tess")) == 3
    assert any(r["details"].get("method") == "password+totp" for r in audit("auth.login", "tess"))


def test_recovery_codes_work_once_each(url):
    _, recovery, _ = enrolled_user(url, "rick")
    first = second_step(url, {"mfaToken": password_login(url, "rick")["mfaToken"],
                              "recoveryCode": recovery[0].upper()})
    assert first.status_code == 200, first.text
    again = second_step(url, {"mfaToken": password_login(url, "rick")["mfaToken"], "recoveryCode": recovery[0]})
    assert again.status_code == 401
    token = first.json()["token"]
    assert requests.get(f"{url}/api/v1/auth/totp", headers=bearer(token), timeout=10).json()["recoveryCodesLeft"] == 9
    login_rows = audit("auth.login", "rick")
    assert login_rows[-1]["details"]["method"] == "password+recovery code"
    both = second_step(url, {"mfaToken": password_login(url, "rick")["mfaToken"], "code": "123456",
                             "recoveryCode": recovery[1]})
    assert both.status_code == 400


def test_attempts_are_limited_per_first_step_and_per_user(url):
    secret, _, _ = enrolled_user(url, "gus")
    bad = "000000" if code(secret, 1) != "000000" and code(secret) != "000000" else "999999"
    mfa_token = password_login(url, "gus")["mfaToken"]
    answers = [second_step(url, {"mfaToken": mfa_token, "code": bad}).json()["error"] for _ in range(5)]
    assert answers == ["invalid code"] * 5
    # Five tries used up this first step...
    assert second_step(url, {"mfaToken": mfa_token, "code": code(secret, 1)}).json()["error"] == "invalid mfa token"
    # ...and the user's failures hit the limit: a new first step gets 429, even with the right code.
    limited = second_step(url, {"mfaToken": password_login(url, "gus")["mfaToken"], "code": code(secret, 1)})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1


def test_an_admin_can_require_totp_for_admins_or_everyone(url, admin):
    make_user("boss", role="admin")
    make_user("worker")
    assert requests.patch(f"{url}/api/v1/config", json={"auth.totpRequired": "sometimes"}, headers=admin,
                          timeout=10).status_code == 400
    assert requests.patch(f"{url}/api/v1/config", json={"auth.totpRequired": "admins"}, headers=admin,
                          timeout=10).status_code == 200
    try:
        assert "token" in password_login(url, "worker")
        first = password_login(url, "boss")
        assert first["mfaRequired"] is True and first["enrolled"] is False
        # Without enrolment there is no code to give; enrol with the first-step token.
        enrolment = requests.post(f"{url}/api/v1/auth/login/totp/enroll", json={"mfaToken": first["mfaToken"]},
                                  timeout=10)
        assert enrolment.status_code == 200 and enrolment.json()["qrSvg"].startswith("<svg")
        done = second_step(url, {"mfaToken": first["mfaToken"], "code": code(enrolment.json()["secret"])})
        assert done.status_code == 200, done.text
        assert len(done.json()["recoveryCodes"]) == 10 and done.json()["user"]["username"] == "boss"
        assert requests.get(f"{url}/api/v1/auth/totp", headers=bearer(done.json()["token"]), timeout=10).json() == \
            {"enrolled": True, "required": True, "recoveryCodesLeft": 10}
        # Required: the user cannot turn it off.
        assert requests.post(f"{url}/api/v1/auth/totp/disable", json={"code": code(enrolment.json()["secret"], 1)},
                             headers=bearer(done.json()["token"]), timeout=10).status_code == 403
        assert requests.patch(f"{url}/api/v1/config", json={"auth.totpRequired": "everyone"}, headers=admin,
                              timeout=10).status_code == 200
        assert password_login(url, "worker")["mfaRequired"] is True
    finally:
        requests.patch(f"{url}/api/v1/config", json={"auth.totpRequired": "off"}, headers=admin, timeout=10)
    assert any(r["details"]["new"] == "admins" for r in audit("config.update", "auth.totpRequired"))


def test_a_user_can_turn_totp_off_with_a_current_code(url):
    secret, _, token = enrolled_user(url, "olive")
    used = requests.post(f"{url}/api/v1/auth/totp/disable", json={"code": code(secret)}, headers=bearer(token),
                         timeout=10)
    assert used.status_code == 400  # that code confirmed the enrolment: used
    off = requests.post(f"{url}/api/v1/auth/totp/disable", json={"code": code(secret, 1)}, headers=bearer(token),
                        timeout=10)
    assert off.status_code == 200
    assert "token" in password_login(url, "olive")
    assert audit("auth.totp.disable", "olive")


def test_an_admin_resets_a_users_totp_and_it_is_audited(url, admin):
    enrolled_user(url, "lost-phone")
    from streamspace.db import fetch_one

    user_id = str(fetch_one("SELECT id FROM users WHERE username = 'lost-phone'")["id"])
    assert password_login(url, "lost-phone")["mfaRequired"] is True
    reset = requests.delete(f"{url}/api/v1/users/{user_id}/totp", headers=admin, timeout=10)
    assert reset.status_code == 200
    assert "token" in password_login(url, "lost-phone")  # one step again
    assert requests.delete(f"{url}/api/v1/users/{user_id}/totp", headers=admin, timeout=10).status_code == 404
    rows = audit("auth.totp.reset", "lost-phone")
    assert len(rows) == 1 and rows[0]["actor"] == "totp-root"
    make_user("not-admin")
    plain = password_login(url, "not-admin")["token"]
    assert requests.delete(f"{url}/api/v1/users/{user_id}/totp", headers=bearer(plain), timeout=10).status_code == 403


def test_totp_codes_follow_rfc_6238():
    """The RFC's SHA-1 test vector (appendix B): secret "12345678901234567890", T=59 -> 94287082 (8
    digits); our 6-digit codes are its last six digits."""
    import base64

    from streamspace.mfa.totp import code_at, matching_step

    secret = base64.b32encode(b"12345678901234567890").decode()
    assert code_at(secret, 59) == "287082"
    assert matching_step(secret, "287082", after_step=None, now=59) == 1
    assert matching_step(secret, "287082", after_step=1, now=59) is None  # replay
    assert matching_step(secret, "287082", after_step=None, now=59 + 60) is None  # two steps later: too old
    assert matching_step(secret, "28708", after_step=None, now=59) is None
