"""Two-factor login with TOTP for local accounts.

- Enrolment: a new secret (QR code + otpauth URI), confirmed by a first valid code, which also
  hands out ten single-use recovery codes (stored hashed).
- Login: when a user is enrolled, or the policy (`auth.totpRequired` in /api/v1/config: `off`,
  `admins`, `everyone`) requires it, a correct password answers a first-step token instead of a
  login. That token is opaque (not a JWT: no route accepts it as a bearer), lives five minutes,
  allows five tries, and only `POST /auth/login/totp` (and `/auth/login/totp/enroll` for a user who
  must enrol first) accepts it.
- Codes: ±1 step of 30 s; a code of a step at or before the last one used is refused (replay);
  failures are rate-limited per user and per address like password failures.
- Admins reset a user's TOTP (audited). Accounts of the OpenID Provider use its two-factor instead.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

from streamspace import audit
from streamspace.auth.attempts import begin_attempt
from streamspace.auth.families import start_family
from streamspace.auth.principal import Principal
from streamspace.auth.refresh import rfc3339, token_response
from streamspace.auth.users.service import parse_uuid
from streamspace.catalog.credentials import decrypt, encrypt
from streamspace.db import connection, transaction
from streamspace.domain.errors import Conflict, Forbidden, NotFound, Unauthenticated, ValidationError
from streamspace.mfa import store
from streamspace.mfa.totp import (
    matching_step,
    new_recovery_codes,
    new_secret,
    provisioning_uri,
    qr_svg,
    recovery_code_hash,
)
from streamspace.settings.service import AUTH_TOTP_REQUIRED, platform_settings

if TYPE_CHECKING:
    from streamspace.auth.principal import Principal
    from streamspace.db import Connection

CHALLENGE_TTL_SECONDS = 300
MAX_CHALLENGE_ATTEMPTS = 5
SECOND_STEP_FIELDS = frozenset({"mfaToken", "code", "recoveryCode"})
CHALLENGE_FIELDS = frozenset({"mfaToken"})
CODE_FIELDS = frozenset({"code"})


def policy() -> str:
    return str(platform_settings()[AUTH_TOTP_REQUIRED])


def required_for(role: str, provider: str, current_policy: str) -> bool:
    return provider == "local" and (current_policy == "everyone" or (current_policy == "admins" and role == "admin"))


def _enrolment(secret: str, username: str) -> dict[str, Any]:
    uri = provisioning_uri(secret, username)
    return {"secret": secret, "otpauthUri": uri, "qrSvg": qr_svg(uri),
            "message": "scan the QR code with an authenticator app, then send a first code to confirm"}


def _new_pending_secret(conn: Connection, user_id: str) -> str:
    existing = store.credential(conn, user_id, lock=True)
    if existing and existing["confirmed"]:
        raise Conflict("two-factor login is already set up; disable it (or ask an admin to reset it) first",
                       error="totp enrolled")
    secret = new_secret()
    store.save_pending(conn, user_id, encrypt(secret))
    return secret


def _issue_recovery_codes(conn: Connection, user_id: str) -> list[str]:
    codes = new_recovery_codes()
    store.replace_recovery_codes(conn, user_id, [recovery_code_hash(c) for c in codes])
    return codes


def _local_only(provider: str) -> None:
    if provider != "local":
        raise Conflict("two-factor login here is for local accounts; your identity provider handles yours",
                       error="not a local account")


# -- the signed-in user ---------------------------------------------------------------------------

def status(caller: Principal) -> dict[str, Any]:
    with connection() as conn:
        cred = store.credential(conn, caller.user_id)
        user = store.user_role_and_provider(conn, caller.user_id)
        left = store.recovery_codes_left(conn, caller.user_id)
    if user is None:
        raise RuntimeError("invariant broken: user is None")
    return {"enrolled": bool(cred and cred["confirmed"]), "required": required_for(user["role"], user["provider"],
                                                                                   policy()),
            "recoveryCodesLeft": left}


def enroll(caller: Principal) -> dict[str, Any]:
    with transaction() as conn:
        user = store.user_role_and_provider(conn, caller.user_id)
        if user is None:
            raise RuntimeError("invariant broken: user is None")
        _local_only(user["provider"])
        secret = _new_pending_secret(conn, caller.user_id)
    return _enrolment(secret, caller.username)


def confirm(caller: Principal, code: object, client_ip: str) -> dict[str, Any]:
    """A first valid code turns the pending secret on; answers the ten recovery codes (shown once)."""

    with transaction() as conn:
        cred = store.credential(conn, caller.user_id, lock=True)
        if cred is None:
            raise Conflict("start with POST /api/v1/auth/totp/enroll", error="totp not started")
        if cred["confirmed"]:
            raise Conflict("two-factor login is already set up", error="totp enrolled")
        step = matching_step(decrypt(cred["secret"]), code, after_step=None)
        if step is None:
            raise ValidationError("code", "not the current code of the authenticator app (6 digits)")
        store.mark_used(conn, caller.user_id, step, confirm=True)
        codes = _issue_recovery_codes(conn, caller.user_id)
        audit.record(conn, caller, "auth.totp.enroll", "user", caller.username, client_ip, {})
    return {"recoveryCodes": codes, "message": "two-factor login is on; keep the recovery codes somewhere safe"}


def disable(caller: Principal, code: object, client_ip: str) -> dict[str, Any]:
    """Turn one's own TOTP off with a current code, unless the policy requires it."""

    if required_for(caller.role, "local", policy()):
        raise Forbidden("two-factor login is required for your account", error="totp required")
    with transaction() as conn:
        cred = store.credential(conn, caller.user_id, lock=True)
        if cred is None or not cred["confirmed"]:
            raise Conflict("two-factor login is not set up", error="totp not enrolled")
        if matching_step(decrypt(cred["secret"]), code, after_step=cred["last_step"]) is None:
            raise ValidationError("code", "not the current code of the authenticator app (6 digits)")
        store.delete_credential(conn, caller.user_id)
        audit.record(conn, caller, "auth.totp.disable", "user", caller.username, client_ip, {})
    return {"message": "two-factor login is off"}


def reset(actor: Principal, user_id: str, client_ip: str) -> dict[str, Any]:
    """Admin: remove a user's TOTP (lost phone and codes); they enrol again (at next login if required)."""

    user_id = parse_uuid(user_id)
    with transaction() as conn:
        user = store.user_role_and_provider(conn, user_id)
        if user is None:
            raise NotFound("no such user", error="not found")
        if not store.delete_credential(conn, user_id):
            raise NotFound("this user has no two-factor login", error="totp not enrolled")
        audit.record(conn, actor, "auth.totp.reset", "user", user["username"], client_ip, {"id": user_id})
    return {"message": f"two-factor login of {user['username']} was reset"}


# -- the two-step login ----------------------------------------------------------------------------

def second_step(conn: Connection, user_id: str, role: str, provider: str) -> dict[str, Any] | None:
    """Inside a password login's transaction: the first-step answer when this user must also give a
    code (enrolled, or required by the policy), else None (the login completes)."""

    cred = store.credential(conn, user_id)
    enrolled = bool(cred and cred["confirmed"])
    if not enrolled and not required_for(role, provider, policy()):
        return None
    token = secrets.token_urlsafe(32)
    store.save_challenge(conn, token, user_id, CHALLENGE_TTL_SECONDS)
    return {"mfaRequired": True, "mfaToken": token, "enrolled": enrolled,
            "expiresAt": rfc3339(int(time.time()) + CHALLENGE_TTL_SECONDS),
            "message": "send a code of your authenticator app (or a recovery code) to /api/v1/auth/login/totp"
            if enrolled else "two-factor login is required: enrol at /api/v1/auth/login/totp/enroll first"}


def _live_challenge(conn: Connection, token: object) -> dict[str, Any]:
    if not isinstance(token, str) or not token or len(token) > 128:
        raise ValidationError("mfaToken", "expected the mfaToken of the password step")
    found = store.challenge(conn, token)
    if found is None:
        raise Unauthenticated("unknown or expired login step; log in with your password again",
                              error="invalid mfa token")
    if not found["active"]:
        raise Forbidden("this account is disabled", error="account disabled")
    return found


def enroll_at_login(body: dict[str, Any]) -> dict[str, Any]:
    """A user the policy requires to have TOTP, but who has none: a secret to enrol with, bound to
    the first-step token (the code sent to /login/totp confirms it)."""

    with transaction() as conn:
        found = _live_challenge(conn, body.get("mfaToken"))
        secret = _new_pending_secret(conn, found["user_id"])
    return _enrolment(secret, found["username"])


def complete_login(body: dict[str, Any], client_ip: str) -> dict[str, Any]:
    """`{mfaToken, code}` or `{mfaToken, recoveryCode}` -> a login (plus `recoveryCodes` when this
    code confirmed an enrolment made during the login)."""

    code, recovery = body.get("code"), body.get("recoveryCode")
    if (code is None) == (recovery is None):
        raise ValidationError("code", "give either code (6 digits) or recoveryCode")
    if recovery is not None and (not isinstance(recovery, str) or len(recovery) > 64):
        raise ValidationError("recoveryCode", "expected a recovery code such as abcd-efgh-jkmn-pqrs")
    token = body.get("mfaToken")
    with transaction() as conn:  # committed on its own: a failed try must count
        found = _live_challenge(conn, token)
        attempt = begin_attempt(conn, "totp:" + found["username"], client_ip, per_account=True)
    if not isinstance(token, str):
        raise RuntimeError("invariant broken: not isinstance(token, str)")
    user_id, username = found["user_id"], found["username"]
    with transaction() as conn:
        found = _live_challenge(conn, token)  # again, locked: two tries at once cannot both pass
        cred = store.credential(conn, user_id, lock=True)
        how, recovery_codes = None, None
        if cred is not None and recovery is not None and cred["confirmed"]:
            if store.use_recovery_code(conn, user_id, recovery_code_hash(recovery)):
                how = "recovery code"
        elif cred is not None and code is not None:
            step = matching_step(decrypt(cred["secret"]), code, after_step=cred["last_step"])
            if step is not None:
                how = "totp"
                store.mark_used(conn, user_id, step, confirm=True)
                if not cred["confirmed"]:
                    recovery_codes = _issue_recovery_codes(conn, user_id)
        if how is None:
            store.count_attempt(conn, token, MAX_CHALLENGE_ATTEMPTS)
            audit.record(conn, None, "auth.totp.failed", "user", username, client_ip,
                         {"reason": "wrong, reused or expired code" if recovery is None
                          else "unknown or used recovery code"}, actor_name="anonymous")
        else:
            store.delete_challenge(conn, token)
            conn.execute("UPDATE login_attempts SET succeeded = true WHERE id = %s", (attempt,))
            conn.execute("UPDATE users SET last_login = now() WHERE id = %s", (user_id,))
            family_id, refresh_token = start_family(conn, user_id)
            who = Principal(user_id=user_id, username=username, role=found["role"], groups=(), family_id=family_id)
            details: dict[str, Any] = {"family": family_id, "method": f"password+{how}"}
            if how == "recovery code":
                details["recoveryCodesLeft"] = store.recovery_codes_left(conn, user_id)
            if recovery_codes is not None:
                audit.record(conn, who, "auth.totp.enroll", "user", username, client_ip, {"atLogin": True})
            audit.record(conn, who, "auth.login", "user", username, client_ip, details)
            answer = token_response(conn, user_id, family_id, refresh_token)
            if recovery_codes is not None:
                answer["recoveryCodes"] = recovery_codes
            return answer
    raise Unauthenticated("that code is not valid (wrong, already used, or too old)", error="invalid code")
