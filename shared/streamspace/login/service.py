"""Password login and password changes, above the second factor, single sign-on's policy and
the desktop grants they consult (attempts are throttled by `auth.attempts`). Unknown users and
wrong passwords get the same 401 after the same work (a dummy hash check).
"""

from __future__ import annotations

from typing import Any

from streamspace import audit
from streamspace.auth import attempts
from streamspace.auth.families import revoke_user_families, start_family
from streamspace.auth.passwords import hash_password, verify_password
from streamspace.auth.principal import Principal
from streamspace.auth.refresh import token_response
from streamspace.auth.users import store as users_store
from streamspace.auth.users.service import valid_password
from streamspace.db import transaction
from streamspace.desktop.access import revoke_user as revoke_desktops
from streamspace.domain.errors import Forbidden, Unauthenticated, ValidationError
from streamspace.mfa.service import second_step
from streamspace.sso.service import password_login_refusal

LOGIN_FIELDS = frozenset({"username", "password"})
PASSWORD_FIELDS = frozenset({"oldPassword", "newPassword"})
_MAX_INPUT = 1024


def _text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_INPUT:
        raise ValidationError(field, f"expected a non-empty string of at most {_MAX_INPUT} characters")
    return value


def login(body: dict[str, Any], client_ip: str) -> dict[str, Any]:
    """`{username, password}` -> `{token, refreshToken, expiresAt, user}`, or, when the user must
    also give a TOTP code, `{mfaRequired, mfaToken, enrolled, expiresAt}` (mfa.service)."""
    username = _text(body.get("username"), "username").strip().lower()
    password = _text(body.get("password"), "password")
    refusal = password_login_refusal(username)
    if refusal:
        _refuse_password_login(username, refusal, client_ip)
    with transaction() as conn:
        attempt = attempts.begin_attempt(conn, username, client_ip)
        user = users_store.credentials(conn, username=username)
    # The slow part runs with no transaction open: the attempt row is already committed as a failure.
    # Only a local account's password counts: an SSO account is authenticated by its provider alone,
    # even if a hash was ever stored for it (the same answer and cost as an unknown user).
    local_hash = user["password_hash"] if user and user["provider"] == "local" else None
    ok, upgraded_hash = verify_password(local_hash, password)
    if not ok or user is None:
        with transaction() as conn:
            audit.record(conn, None, "auth.login.failed", "user", username, client_ip,
                         {"reason": "bad credentials"}, actor_name="anonymous")
        raise Unauthenticated("invalid username or password", error="invalid credentials")
    if not user["active"]:
        with transaction() as conn:
            attempts.succeeded(conn, attempt)
            audit.record(conn, None, "auth.login.denied", "user", username, client_ip,
                         {"reason": "account disabled"}, actor_name=username)
        raise Forbidden("this account is disabled", error="account disabled")
    refusal = password_login_refusal(username, user["role"])
    if refusal:  # the break-glass name, but no longer an admin
        _refuse_password_login(username, refusal, client_ip)
    with transaction() as conn:
        attempts.succeeded(conn, attempt)
        if upgraded_hash is not None:
            users_store.set_password_hash(conn, user["id"], upgraded_hash)
        first_step = second_step(conn, user["id"], user["role"], user["provider"])
        if first_step is not None:  # the password was right; the login completes at /auth/login/totp
            audit.record(conn, None, "auth.login.password", "user", username, client_ip,
                         {"next": "totp", "enrolled": first_step["enrolled"]}, actor_name=username)
            return first_step
        users_store.mark_login(conn, user["id"])
        family_id, refresh_token = start_family(conn, user["id"])
        who = Principal(user_id=user["id"], username=username, role=user["role"], groups=(), family_id=family_id)
        audit.record(conn, who, "auth.login", "user", username, client_ip,
                     {"family": family_id, "hashUpgraded": upgraded_hash is not None})
        return token_response(conn, user["id"], family_id, refresh_token)


def _refuse_password_login(username: str, message: str, client_ip: str) -> None:
    with transaction() as conn:
        audit.record(conn, None, "auth.login.denied", "user", username, client_ip,
                     {"reason": "password login disabled"}, actor_name="anonymous")
    raise Forbidden(message, error="password login disabled")


def change_password(caller: Principal, body: dict[str, Any], client_ip: str) -> dict[str, Any]:
    """`{oldPassword, newPassword}`: checks the old one (rate limited like a login), stores the
    new one, and ends every other login of the user (the caller's own stays) and every desktop cookie."""
    old = _text(body.get("oldPassword"), "oldPassword")
    new = valid_password(body.get("newPassword"), "newPassword", username=caller.username)
    with transaction() as conn:
        attempt = attempts.begin_attempt(conn, caller.username, client_ip)
        user = users_store.credentials(conn, user_id=caller.user_id)
    ok, _ = verify_password(user["password_hash"] if user else None, old)
    if not ok or user is None:
        with transaction() as conn:
            audit.record(conn, caller, "auth.password.failed", "user", caller.username, client_ip,
                         {"reason": "wrong old password"})
        raise ValidationError("oldPassword", "the current password is not correct")
    if new == old:
        raise ValidationError("newPassword", "must differ from the current password")
    new_hash = hash_password(new)
    with transaction() as conn:
        attempts.succeeded(conn, attempt)
        users_store.set_password_hash(conn, user["id"], new_hash, changed=True)
        revoked = revoke_user_families(conn, user["id"], "password changed", keep=caller.family_id)
        revoke_desktops(conn, user["id"])  # every desktop cookie, the one opened from this login too
        audit.record(conn, caller, "auth.password.change", "user", caller.username, client_ip,
                     {"revokedLogins": revoked})
    return {"message": "password changed; other logins were signed out"}
