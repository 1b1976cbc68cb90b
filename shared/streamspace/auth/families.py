"""Logins as token families, and their refresh tokens: the tables token_families and refresh_tokens.

A login is a family; every access and refresh token of that login carries its id, and revoking the
family ends them all (streamspace.auth.principal checks it on every request). Refresh tokens are
stored only as their SHA-256. The exchange and its reuse detection are streamspace.auth.refresh.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

from streamspace.config import environment

if TYPE_CHECKING:
    from streamspace.db import Connection


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_refresh_token(conn: Connection, user_id: str, family_id: str) -> str:
    token = secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at)"
        " VALUES (%s, %s, %s, now() + %s * interval '1 second')",
        (hash_token(token), family_id, user_id, environment().refresh_token_ttl_seconds))
    return token


def start_family(conn: Connection, user_id: str) -> tuple[str, str]:
    """A new login: (family id, its first refresh token). Also drops this user's expired tokens."""
    conn.execute("DELETE FROM refresh_tokens WHERE user_id = %s AND expires_at < now()", (user_id,))
    row = conn.execute("INSERT INTO token_families (user_id) VALUES (%s) RETURNING id::text AS id",
                       (user_id,)).fetchone()
    if row is None:  # INSERT ... RETURNING answers its row or raises
        raise RuntimeError("a new token family was not returned")
    family_id = str(row["id"])
    return family_id, new_refresh_token(conn, user_id, family_id)


def revoke_family(conn: Connection, family_id: str, reason: str) -> bool:
    row = conn.execute("UPDATE token_families SET revoked_at = now(), revoked_reason = %s"
                       " WHERE id = %s AND revoked_at IS NULL RETURNING id", (reason, family_id)).fetchone()
    return row is not None


def revoke_user_families(conn: Connection, user_id: str, reason: str,
                         keep: str | None = None) -> int:
    """Revoke every live login of a user except `keep` (the caller's own, on a password change)."""
    return conn.execute(
        "UPDATE token_families SET revoked_at = now(), revoked_reason = %s"
        " WHERE user_id = %s AND revoked_at IS NULL AND (%s::uuid IS NULL OR id <> %s::uuid)",
        (reason, user_id, keep, keep)).rowcount
