"""Password login, throttled per username+address and per address (never locked per username),
and password changes.

Throttling follows OWASP's advice against account lockout: failures count per (username, client
address) pair, and past LOGIN_MAX_FAILURES each further try from that pair must wait a delay that
doubles per failure (1 s, 2 s, 4 s, ... up to LOGIN_WINDOW). An address that fails against many
usernames (spraying) is stopped at LOGIN_MAX_ADDRESS_FAILURES per window. So an attacker slows only
their own addresses: the account's owner, from an address that has not been failing, logs in.
Attempts are rows in login_attempts, so every function instance sees the same counts. An attempt
is recorded as a failure *before* the password is checked (and flipped to a success after), under
a short advisory lock per username and address: concurrent guesses cannot overshoot the limit.
Unknown users and wrong passwords get the same 401 after the same work (a dummy hash check).
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any

from streamspace import audit
from streamspace.auth.families import revoke_user_families, start_family
from streamspace.auth.passwords import hash_password, verify_password
from streamspace.auth.principal import Principal
from streamspace.auth.refresh import token_response
from streamspace.auth.users.service import valid_password
from streamspace.config import environment
from streamspace.db import transaction
from streamspace.domain.errors import Forbidden, RateLimited, Unauthenticated, ValidationError

if TYPE_CHECKING:
    import psycopg

    from streamspace.auth.principal import Principal

LOGIN_FIELDS = frozenset({"username", "password"})
PASSWORD_FIELDS = frozenset({"oldPassword", "newPassword"})
_MAX_INPUT = 1024

# Failures in the window of this username from this address (since the pair's last success), how
# long ago the last of them was; and the failures of this address, with the moment the oldest one
# that keeps it at its limit leaves the window. `now` is the clock read after the advisory lock was
# taken, never now() (the transaction's start, before it queued for the lock: stale by the whole wait).
_FAILURES = """
WITH p AS (
  SELECT attempted_at FROM login_attempts
   WHERE username = %(username)s AND client_ip = %(ip)s AND NOT succeeded
     AND attempted_at > %(now)s::timestamptz - %(window)s * interval '1 second'
     AND attempted_at > coalesce((SELECT max(attempted_at) FROM login_attempts
                                   WHERE username = %(username)s AND client_ip = %(ip)s AND succeeded), '-infinity')
), a AS (
  SELECT attempted_at FROM login_attempts
   WHERE client_ip = %(ip)s AND NOT succeeded AND attempted_at > %(now)s::timestamptz - %(window)s * interval '1 second'
), u AS (
  SELECT attempted_at FROM login_attempts
   WHERE %(per_account)s AND username = %(username)s AND NOT succeeded
     AND attempted_at > %(now)s::timestamptz - %(window)s * interval '1 second'
     AND attempted_at > coalesce((SELECT max(attempted_at) FROM login_attempts
                                   WHERE username = %(username)s AND succeeded), '-infinity')
)
SELECT (SELECT count(*) FROM p) AS pair_failures,
       extract(epoch FROM %(now)s::timestamptz - (SELECT max(attempted_at) FROM p)) AS since_last,
       (SELECT count(*) FROM a) AS ip_failures,
       extract(epoch FROM (SELECT attempted_at FROM a ORDER BY attempted_at DESC OFFSET %(ip_max)s - 1 LIMIT 1)
                          + %(window)s * interval '1 second' - %(now)s::timestamptz) AS ip_retry,
       (SELECT count(*) FROM u) AS user_failures,
       extract(epoch FROM (SELECT attempted_at FROM u ORDER BY attempted_at DESC OFFSET %(max)s - 1 LIMIT 1)
                          + %(window)s * interval '1 second' - %(now)s::timestamptz) AS user_retry
"""


def pair_delay(failures: int, free: int, ceiling: int) -> int:
    """Seconds a (username, address) pair must wait after its last failure: none for the first
    `free` failures, then 1, 2, 4, ... seconds, at most `ceiling`."""
    if failures < free:
        return 0
    return min(ceiling, 2 ** min(failures - free, 30))


def _lock_key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(("streamspace.login:" + text).encode()).digest()[:8], "big", signed=True)


def _text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_INPUT:
        raise ValidationError(field, f"expected a non-empty string of at most {_MAX_INPUT} characters")
    return value


def begin_attempt(conn: psycopg.Connection[Any], username: str, client_ip: str, *, per_account: bool = False) -> int:
    """Refuse (429) while this username+address pair must wait, or the address is over its limit;
    otherwise record this attempt as a failure and return its id (flipped on success).

    `per_account` also stops the account itself at LOGIN_MAX_FAILURES per window, from any
    addresses: for a second factor, whose guesser already holds the password."""

    cfg = environment()
    keys = sorted({_lock_key("user:" + username), _lock_key("ip:" + client_ip)})
    conn.execute("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(%s::bigint[]) AS k", (keys,))
    # Judged and recorded at one instant read under the lock, so the attempts of a pair are stamped
    # in the order they were judged. With now() a guess that queued for the lock was stamped with the
    # moment it began queueing: the next guess saw the last failure as long past and got through early.
    clock = conn.execute("SELECT clock_timestamp() AS now").fetchone()
    if clock is None:
        raise RuntimeError("invariant broken: clock is None")
    now = clock["now"]
    counts = conn.execute(_FAILURES, {"now": now, "username": username, "ip": client_ip,
                                      "window": cfg.login_window_seconds,
                                      "ip_max": cfg.login_max_address_failures, "max": cfg.login_max_failures,
                                      "per_account": per_account}).fetchone()
    if counts is None:
        raise RuntimeError("invariant broken: counts is None")
    waits = [0.0]
    delay = pair_delay(int(counts["pair_failures"]), cfg.login_max_failures, cfg.login_window_seconds)
    if delay:
        waits.append(delay - float(counts["since_last"] or 0))
    if counts["ip_failures"] >= cfg.login_max_address_failures:
        waits.append(float(counts["ip_retry"] or cfg.login_window_seconds))
    if counts["user_failures"] >= cfg.login_max_failures:
        waits.append(float(counts["user_retry"] or cfg.login_window_seconds))
    if max(waits) > 0:
        retry = max(1, math.ceil(max(waits)))
        raise RateLimited(f"too many failed login attempts; try again in {retry} seconds", retry_after=retry,
                          error="too many attempts")
    conn.execute("DELETE FROM login_attempts WHERE (username = %s OR client_ip = %s)"
                 " AND attempted_at < %s::timestamptz - interval '1 day'", (username, client_ip, now))
    row = conn.execute("INSERT INTO login_attempts (username, client_ip, succeeded, attempted_at)"
                       " VALUES (%s, %s, false, %s) RETURNING id", (username, client_ip, now)).fetchone()
    if row is None:
        raise RuntimeError("invariant broken: row is None")
    return int(row["id"])


def _find_user(conn: psycopg.Connection[Any], *, username: str | None = None,
               user_id: str | None = None) -> dict[str, Any] | None:
    row = conn.execute("SELECT id::text AS id, username, role, active, provider, password_hash FROM users"
                       " WHERE username = %s OR id = %s::uuid", (username, user_id)).fetchone()
    return dict(row) if row else None


def login(body: dict[str, Any], client_ip: str) -> dict[str, Any]:
    """`{username, password}` -> `{token, refreshToken, expiresAt, user}`, or, when the user must
    also give a TOTP code, `{mfaRequired, mfaToken, enrolled, expiresAt}` (mfa.service)."""
    from streamspace.mfa.service import second_step
    from streamspace.sso.service import password_login_refusal

    username = _text(body.get("username"), "username").strip().lower()
    password = _text(body.get("password"), "password")
    refusal = password_login_refusal(username)
    if refusal:
        _refuse_password_login(username, refusal, client_ip)
    with transaction() as conn:
        attempt = begin_attempt(conn, username, client_ip)
        user = _find_user(conn, username=username)
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
            conn.execute("UPDATE login_attempts SET succeeded = true WHERE id = %s", (attempt,))
            audit.record(conn, None, "auth.login.denied", "user", username, client_ip,
                         {"reason": "account disabled"}, actor_name=username)
        raise Forbidden("this account is disabled", error="account disabled")
    refusal = password_login_refusal(username, user["role"])
    if refusal:  # the break-glass name, but no longer an admin
        _refuse_password_login(username, refusal, client_ip)
    with transaction() as conn:
        conn.execute("UPDATE login_attempts SET succeeded = true WHERE id = %s", (attempt,))
        if upgraded_hash is not None:
            conn.execute("UPDATE users SET password_hash = %s WHERE id = %s", (upgraded_hash, user["id"]))
        first_step = second_step(conn, user["id"], user["role"], user["provider"])
        if first_step is not None:  # the password was right; the login completes at /auth/login/totp
            audit.record(conn, None, "auth.login.password", "user", username, client_ip,
                         {"next": "totp", "enrolled": first_step["enrolled"]}, actor_name=username)
            return first_step
        conn.execute("UPDATE users SET last_login = now() WHERE id = %s", (user["id"],))
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
    from streamspace.desktop.access import revoke_user as revoke_desktops

    old = _text(body.get("oldPassword"), "oldPassword")
    new = valid_password(body.get("newPassword"), "newPassword", username=caller.username)
    with transaction() as conn:
        attempt = begin_attempt(conn, caller.username, client_ip)
        user = _find_user(conn, user_id=caller.user_id)
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
        conn.execute("UPDATE login_attempts SET succeeded = true WHERE id = %s", (attempt,))
        conn.execute("UPDATE users SET password_hash = %s, updated_at = now() WHERE id = %s", (new_hash, user["id"]))
        revoked = revoke_user_families(conn, user["id"], "password changed", keep=caller.family_id)
        revoke_desktops(conn, user["id"])  # every desktop cookie, the one opened from this login too
        audit.record(conn, caller, "auth.password.change", "user", caller.username, client_ip,
                     {"revokedLogins": revoked})
    return {"message": "password changed; other logins were signed out"}
