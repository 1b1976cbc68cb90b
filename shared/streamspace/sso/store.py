"""The SQL of single sign-on: login requests in flight, handoff codes, identities, claim mappings.

Only this module speaks SQL to the oidc_* tables. Secrets that travel through the browser (state,
handoff code) are stored as SHA-256 only.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamspace.db import Connection


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


# -- authorization requests (state, nonce, PKCE verifier) ---------------------------------------

def save_login_request(conn: Connection, *, state: str, browser: str, nonce: str, code_verifier: str,
                       redirect_uri: str, return_to: str, ttl_seconds: int) -> None:
    conn.execute("DELETE FROM oidc_login_requests WHERE expires_at < now()")
    conn.execute("INSERT INTO oidc_login_requests (state_hash, browser_hash, nonce, code_verifier, redirect_uri,"
                 " return_to, expires_at) VALUES (%s, %s, %s, %s, %s, %s, now() + %s * interval '1 second')",
                 (digest(state), digest(browser), nonce, code_verifier, redirect_uri, return_to, ttl_seconds))


def take_login_request(conn: Connection, state: str) -> dict[str, Any] | None:
    """The request of `state`, deleted as it is read: a state works once, and only before it expires."""
    row = conn.execute("DELETE FROM oidc_login_requests WHERE state_hash = %s"
                       " RETURNING browser_hash, nonce, code_verifier, redirect_uri, return_to,"
                       " expires_at > now() AS live",
                       (digest(state),)).fetchone()
    return dict(row) if row is not None and row["live"] else None


# -- handoff codes ------------------------------------------------------------------------------

def save_handoff(conn: Connection, code: str, user_id: str, browser: str, ttl_seconds: int) -> None:
    conn.execute("DELETE FROM oidc_handoffs WHERE expires_at < now()")
    conn.execute("INSERT INTO oidc_handoffs (code_hash, user_id, browser_hash, expires_at)"
                 " VALUES (%s, %s, %s, now() + %s * interval '1 second')",
                 (digest(code), user_id, digest(browser), ttl_seconds))


def take_handoff(conn: Connection, code: str, browser: str | None) -> str | None:
    """The user of a live handoff code presented by the browser that did the login; the code is
    spent by any attempt (a wrong browser cannot try again with it)."""
    import hmac

    row = conn.execute("DELETE FROM oidc_handoffs WHERE code_hash = %s RETURNING user_id::text AS user_id,"
                       " browser_hash, expires_at > now() AS live", (digest(code),)).fetchone()
    if row is None or not row["live"] or not browser \
            or not hmac.compare_digest(bytes(row["browser_hash"] or b""), digest(browser)):
        return None
    return str(row["user_id"])


# -- users and identities -----------------------------------------------------------------------

def user_of_identity(conn: Connection, issuer: str, subject: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT id::text AS id, username, role, active, provider FROM users"
                       " WHERE id = (SELECT user_id FROM oidc_identities WHERE issuer = %s AND subject = %s)"
                       " FOR UPDATE", (issuer, subject)).fetchone()
    return dict(row) if row else None


def account_holding(conn: Connection, username: str, email: str | None) -> dict[str, Any] | None:
    """An existing account with this username or (case-insensitively) this email."""
    row = conn.execute("SELECT id::text AS id, username FROM users WHERE username = %s"
                       " OR (%s::text IS NOT NULL AND lower(email) = lower(%s)) LIMIT 1",
                       (username, email, email)).fetchone()
    return dict(row) if row else None


def create_oidc_user(conn: Connection, *, username: str, email: str | None, full_name: str,
                     issuer: str, subject: str) -> dict[str, Any]:
    row = conn.execute("INSERT INTO users (username, email, full_name, role, provider, password_hash)"
                       " VALUES (%s, %s, %s, 'user', 'oidc', NULL) RETURNING id::text AS id, username, role, active,"
                       " provider", (username, email, full_name)).fetchone()
    if row is None:
        raise RuntimeError("invariant broken: row is None")
    conn.execute("INSERT INTO oidc_identities (issuer, subject, user_id) VALUES (%s, %s, %s)",
                 (issuer, subject, row["id"]))
    return dict(row)


def user_provider(conn: Connection, user_id: str) -> str | None:
    row = conn.execute("SELECT provider FROM users WHERE id = %s", (user_id,)).fetchone()
    return str(row["provider"]) if row else None


# -- claim mappings and the memberships they manage ----------------------------------------------

_MAPPINGS = """SELECT m.id::text AS id, m.claim_value, m.group_id::text AS group_id, g.name AS group_name, m.role,
       m.created_at
  FROM oidc_claim_mappings m LEFT JOIN groups g ON g.id = m.group_id
 WHERE %(id)s::uuid IS NULL OR m.id = %(id)s::uuid
 ORDER BY m.claim_value, g.name NULLS FIRST, m.role"""


def list_mappings(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(_MAPPINGS, {"id": None}).fetchall()]


def insert_mapping(conn: Connection, claim_value: str, group_id: str | None,
                   role: str | None) -> dict[str, Any]:
    row = conn.execute("INSERT INTO oidc_claim_mappings (claim_value, group_id, role) VALUES (%s, %s, %s)"
                       " RETURNING id::text AS id", (claim_value, group_id, role)).fetchone()
    if row is None:
        raise RuntimeError("invariant broken: row is None")
    return load_mapping(conn, row["id"]) or {}


def load_mapping(conn: Connection, mapping_id: str) -> dict[str, Any] | None:
    row = conn.execute(_MAPPINGS, {"id": mapping_id}).fetchone()
    return dict(row) if row else None


def delete_mapping(conn: Connection, mapping_id: str) -> bool:
    return conn.execute("DELETE FROM oidc_claim_mappings WHERE id = %s", (mapping_id,)).rowcount > 0


def group_exists(conn: Connection, group_id: str) -> bool:
    return conn.execute("SELECT 1 FROM groups WHERE id = %s", (group_id,)).fetchone() is not None


def mapped(conn: Connection, values: list[str]) -> tuple[set[str], set[str], set[str]]:
    """(roles mapped from these claim values, groups mapped from them, every group any mapping manages)."""
    rows = conn.execute("SELECT claim_value = ANY(%s) AS matched, group_id::text AS group_id, role"
                        " FROM oidc_claim_mappings", (values,)).fetchall()
    roles = {r["role"] for r in rows if r["matched"] and r["role"]}
    groups = {r["group_id"] for r in rows if r["matched"] and r["group_id"]}
    managed = {r["group_id"] for r in rows if r["group_id"]}
    return roles, groups, managed


def sync_memberships(conn: Connection, user_id: str, wanted: set[str],
                     managed: set[str]) -> tuple[list[str], list[str]]:
    """Make the user's memberships among the `managed` groups exactly `wanted`; memberships in
    groups no mapping names are left as admins set them. Returns (added, removed) group ids."""
    removed = [r["group_id"] for r in conn.execute(
        "DELETE FROM group_members WHERE user_id = %s AND group_id::text = ANY(%s) AND NOT group_id::text = ANY(%s)"
        " RETURNING group_id::text AS group_id", (user_id, sorted(managed), sorted(wanted))).fetchall()]
    added = [r["group_id"] for r in conn.execute(
        "INSERT INTO group_members (group_id, user_id) SELECT g::uuid, %s FROM unnest(%s::text[]) AS g"
        " ON CONFLICT DO NOTHING RETURNING group_id::text AS group_id", (user_id, sorted(wanted))).fetchall()]
    return sorted(added), sorted(removed)


def update_oidc_user(conn: Connection, user_id: str, role: str) -> None:
    conn.execute("UPDATE users SET role = %s, last_login = now(), updated_at = now() WHERE id = %s",
                 (role, user_id))
