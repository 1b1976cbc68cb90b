"""The SQL of two-factor login: TOTP credentials, recovery codes, and first-step login challenges.

Only this module speaks SQL to totp_credentials, totp_recovery_codes and login_challenges.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamspace.db import Connection


def challenge_hash(token: str) -> bytes:
    return hashlib.sha256(("streamspace-login-challenge:" + token).encode()).digest()


# -- credentials ---------------------------------------------------------------------------------

def credential(conn: Connection, user_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    query = ("SELECT secret, confirmed_at IS NOT NULL AS confirmed, last_step FROM totp_credentials"
             " WHERE user_id = %s FOR UPDATE" if lock else
             "SELECT secret, confirmed_at IS NOT NULL AS confirmed, last_step FROM totp_credentials WHERE user_id = %s")
    row = conn.execute(query, (user_id,)).fetchone()
    return dict(row) if row else None


def save_pending(conn: Connection, user_id: str, encrypted_secret: bytes) -> None:
    """A new, unconfirmed secret (replaces an unconfirmed one; never a confirmed one)."""
    conn.execute("INSERT INTO totp_credentials (user_id, secret) VALUES (%s, %s)"
                 " ON CONFLICT (user_id) DO UPDATE SET secret = EXCLUDED.secret, created_at = now(), last_step = NULL"
                 " WHERE totp_credentials.confirmed_at IS NULL", (user_id, encrypted_secret))


def mark_used(conn: Connection, user_id: str, step: int, *, confirm: bool = False) -> None:
    conn.execute("UPDATE totp_credentials SET last_step = %s,"
                 " confirmed_at = CASE WHEN %s THEN coalesce(confirmed_at, now()) ELSE confirmed_at END"
                 " WHERE user_id = %s", (step, confirm, user_id))


def delete_credential(conn: Connection, user_id: str) -> bool:
    conn.execute("DELETE FROM totp_recovery_codes WHERE user_id = %s", (user_id,))
    return conn.execute("DELETE FROM totp_credentials WHERE user_id = %s", (user_id,)).rowcount > 0


# -- recovery codes ------------------------------------------------------------------------------

def replace_recovery_codes(conn: Connection, user_id: str, hashes: list[bytes]) -> None:
    conn.execute("DELETE FROM totp_recovery_codes WHERE user_id = %s", (user_id,))
    conn.cursor().executemany("INSERT INTO totp_recovery_codes (user_id, code_hash) VALUES (%s, %s)",
                              [(user_id, h) for h in hashes])


def use_recovery_code(conn: Connection, user_id: str, code_hash: bytes) -> bool:
    """Spend one unused recovery code; False when it is unknown or was used."""
    return conn.execute("UPDATE totp_recovery_codes SET used_at = now()"
                        " WHERE user_id = %s AND code_hash = %s AND used_at IS NULL",
                        (user_id, code_hash)).rowcount == 1


def recovery_codes_left(conn: Connection, user_id: str) -> int:
    row = conn.execute("SELECT count(*) AS n FROM totp_recovery_codes WHERE user_id = %s AND used_at IS NULL",
                       (user_id,)).fetchone()
    return int(row["n"]) if row else 0


# -- first-step challenges -----------------------------------------------------------------------

def save_challenge(conn: Connection, token: str, user_id: str, ttl_seconds: int) -> None:
    conn.execute("DELETE FROM login_challenges WHERE expires_at < now()")
    conn.execute("INSERT INTO login_challenges (token_hash, user_id, expires_at)"
                 " VALUES (%s, %s, now() + %s * interval '1 second')", (challenge_hash(token), user_id, ttl_seconds))


def challenge(conn: Connection, token: str) -> dict[str, Any] | None:
    """The live challenge of `token`, locked, with its user; None when unknown or expired."""
    row = conn.execute(
        "SELECT c.user_id::text AS user_id, c.attempts, u.username, u.role, u.active, u.provider"
        "  FROM login_challenges c JOIN users u ON u.id = c.user_id"
        " WHERE c.token_hash = %s AND c.expires_at > now() FOR UPDATE OF c", (challenge_hash(token),)).fetchone()
    return dict(row) if row else None


def count_attempt(conn: Connection, token: str, max_attempts: int) -> None:
    """One more failed try; the challenge is gone after `max_attempts`."""
    conn.execute("UPDATE login_challenges SET attempts = attempts + 1 WHERE token_hash = %s",
                 (challenge_hash(token),))
    conn.execute("DELETE FROM login_challenges WHERE token_hash = %s AND attempts >= %s",
                 (challenge_hash(token), max_attempts))


def delete_challenge(conn: Connection, token: str) -> None:
    conn.execute("DELETE FROM login_challenges WHERE token_hash = %s", (challenge_hash(token),))


def user_role_and_provider(conn: Connection, user_id: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT username, role, provider FROM users WHERE id = %s", (user_id,)).fetchone()
    return dict(row) if row else None
