"""Who is calling: the one place every HTTP function resolves and checks the caller.

The token proves identity; the database decides, on every request, whether that identity is
still active, what its role is now, and whether its login was revoked. That is one indexed
query (primary keys of users and token_families).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamspace.auth.tokens import verify_access_token
from streamspace.db import HotStatement
from streamspace.domain.errors import Forbidden, Unauthenticated
from streamspace.records import record

if TYPE_CHECKING:
    from streamspace.auth.tokens import AccessClaims


@record
class Principal:
    user_id: str
    username: str
    role: str
    groups: tuple[str, ...]
    family_id: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may_access(self, owner_id: str | None) -> bool:
        """Owner scope: a user reaches only its own objects; an admin reaches all."""
        return self.is_admin or (owner_id is not None and str(owner_id) == self.user_id)


_CALLER_SQL = """
SELECT u.username, u.role, u.active,
       (f.id IS NULL OR f.revoked_at IS NOT NULL) AS revoked
  FROM users u
  LEFT JOIN token_families f ON f.id = %(caller_sid)s::uuid AND f.user_id = u.id
 WHERE u.id = %(caller_sub)s::uuid
"""

# Every authenticated request but the few that read the standing in their own statement runs this
# one: straight through libpq (db.HotStatement), prepared once per connection.
_CALLER = HotStatement("caller_standing", _CALLER_SQL)

# The same standing check as the opening of a route's own statement (one round trip per request):
# `standing` holds the caller's row (username, role now) when it may act, no row otherwise; the route's
# work joins it, so nothing is read or written for a refused caller. STANDING_COLUMNS go into the
# statement's result for `Claimant.standing`.
STANDING_CTE = ("caller AS (" + _CALLER_SQL + "),"  # noqa: S608 - constants only, values are bound parameters
                " standing AS (SELECT username, role FROM caller WHERE active AND NOT revoked)")
STANDING_COLUMNS = ("EXISTS (SELECT 1 FROM caller) AS caller_exists, (SELECT username FROM caller) AS caller_username,"
                    " (SELECT role FROM caller) AS caller_role, (SELECT active FROM caller) AS caller_active,"
                    " (SELECT revoked FROM caller) AS caller_revoked")


@record
class Claimant:
    """A caller whose token checked out (signature, expiry, issuer, audience, well-formed ids) but
    whose standing is still to be read, by a route that reads it within its own statement
    (STANDING_CTE, with `params`) and then calls `standing` on the statement's row."""

    user_id: str
    family_id: str | None  # None: no login family, which reads as revoked
    groups: tuple[str, ...]
    role: str  # as the token says: a hint for which statement to run, never a grant

    @property
    def params(self) -> dict[str, str | None]:
        return {"caller_sub": self.user_id, "caller_sid": self.family_id}

    def standing(self, row: dict[str, Any] | None) -> Principal:
        """The caller as it stands, from a row with STANDING_COLUMNS; refused as `authenticate` refuses."""
        if row is None or not row["caller_exists"]:
            require_standing(None)  # raises: no such caller
            raise RuntimeError("require_standing accepted a caller that does not exist")
        require_standing({"revoked": row["caller_revoked"], "active": row["caller_active"]})
        return Principal(user_id=self.user_id, username=row["caller_username"], role=row["caller_role"],
                         groups=self.groups, family_id=self.family_id)

    @classmethod
    def of(cls, caller: Principal) -> Claimant:
        """An already authenticated caller as a claimant, for a statement that reads its standing
        once more (for free: it is the same round trip)."""
        return cls(user_id=caller.user_id, family_id=caller.family_id, groups=caller.groups, role=caller.role)


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("missing Authorization: Bearer <token> header", error="missing token")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("expected Authorization: Bearer <token>", error="invalid token")
    return token.strip()


def verified_claims(token: str) -> AccessClaims:
    """A token's claims once its signature, expiry, issuer and audience check out and its ids are
    well-formed (they go into SQL as uuids)."""
    import uuid


    claims = verify_access_token(token)
    try:
        uuid.UUID(claims.user_id)
        uuid.UUID(claims.family_id)
    except ValueError:
        raise Unauthenticated("invalid access token", error="invalid token") from None
    return claims


def require_standing(row: dict[str, Any] | None) -> None:
    """Refuse a caller whose user is gone, whose login was revoked, or whose account is disabled.
    `row` has the columns `revoked` and `active` (None: no such user)."""
    if row is None:
        raise Unauthenticated("the token's user no longer exists", error="invalid token")
    if row["revoked"]:
        raise Unauthenticated("this login was revoked; log in again", error="token revoked")
    if not row["active"]:
        raise Forbidden("this account is disabled", error="account disabled")


def claimant(authorization: str | None, alternate_token: str | None = None) -> Claimant:
    """The caller a bearer token (or, when no Authorization header came, a token from a cookie or
    query parameter) claims to be, its standing not read yet."""
    token = alternate_token if (alternate_token and not authorization) else bearer_token(authorization)
    claims = verified_claims(token)
    return Claimant(user_id=claims.user_id, family_id=claims.family_id, groups=claims.groups, role=claims.role)


def authenticate(authorization: str | None, alternate_token: str | None = None) -> Principal:
    """Resolve the caller from a bearer token (or a token from a cookie or query parameter),
    refusing disabled users and revoked logins even while the token itself has not expired."""

    claimed = claimant(authorization, alternate_token)
    row = _CALLER.fetch_one(claimed.params)
    require_standing(row)
    if row is None:
        raise RuntimeError("invariant broken: row is None")
    return Principal(user_id=claimed.user_id, username=row["username"], role=row["role"], groups=claimed.groups,
                     family_id=claimed.family_id)


def still_standing(caller: Principal) -> bool:
    """Whether an already authenticated caller may still act: user active, login not revoked (a
    long-lived stream asks again before it sends more)."""

    row = _CALLER.fetch_one({"caller_sub": caller.user_id, "caller_sid": caller.family_id})
    return row is not None and not row["revoked"] and bool(row["active"])
