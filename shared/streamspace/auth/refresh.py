"""Logins as token families; refresh tokens that rotate on every use.

A login starts a family (token_families) and issues its first refresh token: an opaque random
value stored only as its SHA-256. Exchanging a refresh token marks it rotated and issues the next
one in the same family. Presenting a rotated token again means it was copied: the whole family is
revoked, which also ends every access token carrying that family id (`sid`), since
`principal.authenticate` checks the family on every request.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from streamspace import audit
from streamspace.auth.families import hash_token, new_refresh_token, revoke_family, revoke_user_families
from streamspace.auth.tokens import issue_access_token
from streamspace.auth.users.service import load_user, user_to_api
from streamspace.db import transaction
from streamspace.domain.errors import Forbidden, Unauthenticated

if TYPE_CHECKING:
    from streamspace.auth.principal import Principal
    from streamspace.db import Connection

REFRESH_FIELDS = frozenset({"refreshToken", "token"})
_MAX_TOKEN_LENGTH = 512


def rfc3339(unix_time: int) -> str:
    return datetime.fromtimestamp(unix_time, UTC).isoformat().replace("+00:00", "Z")


def token_response(conn: Connection, user_id: str, family_id: str, refresh_token: str) -> dict[str, Any]:
    """`{token, refreshToken, expiresAt, user}`: an access token for the user as it is now."""
    user = user_to_api(load_user(conn, user_id))
    token, expires = issue_access_token(user_id=user["id"], username=user["username"], role=user["role"],
                                        groups=user["groups"], family_id=family_id)
    return {"token": token, "refreshToken": refresh_token, "expiresAt": rfc3339(expires), "user": user}


def presented_refresh_token(body: dict[str, Any]) -> str:
    value = body.get("refreshToken", body.get("token"))
    if not isinstance(value, str) or not value or len(value) > _MAX_TOKEN_LENGTH:
        raise Unauthenticated("a valid refresh token is required in refreshToken", error="invalid refresh token")
    return value


_LOOKUP = """
SELECT r.token_hash, r.family_id::text AS family_id, r.user_id::text AS user_id, r.rotated_at,
       r.expires_at <= now() AS expired, f.revoked_at, u.active, u.username
  FROM refresh_tokens r
  JOIN token_families f ON f.id = r.family_id
  JOIN users u ON u.id = r.user_id
 WHERE r.token_hash = %s
   FOR UPDATE OF r, f
"""


def refresh(presented: str, client_ip: str) -> dict[str, Any]:
    """Exchange a refresh token for a new access token and the next refresh token."""
    digest = hash_token(presented)  # looked up by its hash: timing reveals nothing about the value
    refused: Exception | None = None
    with transaction() as conn:
        row = conn.execute(_LOOKUP, (digest,)).fetchone()
        if row is None or not hmac.compare_digest(bytes(row["token_hash"]), digest):
            refused = Unauthenticated("unknown refresh token", error="invalid refresh token")
        elif row["revoked_at"] is not None:
            refused = Unauthenticated("this login was revoked; log in again", error="token revoked")
        elif row["rotated_at"] is not None:
            # A rotated token presented again: someone holds a copy. End the whole login.
            revoke_family(conn, row["family_id"], "refresh token reuse")
            audit.record(conn, None, "auth.refresh.reuse", "user", row["username"], client_ip,
                         {"family": row["family_id"]}, actor_name="anonymous")
            refused = Unauthenticated("this refresh token was already used; the login is revoked",
                                      error="token reuse")
        elif row["expired"]:
            refused = Unauthenticated("refresh token expired; log in again", error="token expired")
        elif not row["active"]:
            refused = Forbidden("this account is disabled", error="account disabled")
        else:
            conn.execute("UPDATE refresh_tokens SET rotated_at = now() WHERE token_hash = %s", (digest,))
            token = new_refresh_token(conn, row["user_id"], row["family_id"])
            return token_response(conn, row["user_id"], row["family_id"], token)
    if refused is None:
        raise RuntimeError("invariant broken: refused is None")
    raise refused


def logout(conn: Connection, user_id: str, family_id: str | None, presented: str | None) -> int:
    """Revoke the caller's login (its token family) and, if given, the family of a refresh token
    that belongs to the same user. Returns how many families were revoked."""
    revoked = 0
    if family_id is not None and revoke_family(conn, family_id, "logout"):
        revoked += 1
    if presented:
        row = conn.execute("SELECT family_id::text AS family_id FROM refresh_tokens"
                           " WHERE token_hash = %s AND user_id = %s", (hash_token(presented), user_id)).fetchone()
        if row is not None and row["family_id"] != family_id and revoke_family(conn, row["family_id"], "logout"):
            revoked += 1
    return revoked


def end_login(caller: Principal, presented: str | None, client_ip: str) -> int:
    """Log out: revoke the caller's login (and that of `presented`, a refresh token of the same
    user) and record it. The API's logout and the portal's share this."""
    with transaction() as conn:
        revoked = logout(conn, caller.user_id, caller.family_id, presented)
        audit.record(conn, caller, "auth.logout", "user", caller.username, client_ip, {"revokedLogins": revoked})
    return revoked


def end_all_logins(caller: Principal, client_ip: str) -> int:
    """Log out everywhere: every login of the caller ends, this one included."""
    with transaction() as conn:
        revoked = revoke_user_families(conn, caller.user_id, "logged out everywhere")
        audit.record(conn, caller, "auth.logout.all", "user", caller.username, client_ip, {"revokedLogins": revoked})
    return revoked
