"""Access tokens: short-lived HS256 JWTs with a key id, so keys can rotate.

Verification pins the algorithm list (no `none`, no RS/HS confusion), requires exp, iat, iss, aud
and sub, and accepts every configured verification key by its `kid`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from streamspace.config import Environment, environment
from streamspace.domain.errors import DomainError, Unauthenticated

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "sid"]


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    username: str
    role: str
    groups: tuple[str, ...]
    token_id: str
    family_id: str  # the login (token_families row) this token belongs to; checked on every use
    expires_at: int


def issue_access_token(*, user_id: str, username: str, role: str, groups: list[str], family_id: str,
                       cfg: Environment | None = None, now: int | None = None) -> tuple[str, int]:
    """Return (token, expiry as a Unix time)."""
    import jwt

    cfg = cfg or environment()
    issued = int(time.time()) if now is None else now
    expires = issued + cfg.access_token_ttl_seconds
    claims: dict[str, Any] = {
        "sub": user_id,
        "username": username,
        "role": role,
        "groups": groups,
        "iss": cfg.jwt_issuer,
        "aud": cfg.jwt_audience,
        "iat": issued,
        "exp": expires,
        "jti": uuid.uuid4().hex,
        "sid": family_id,
    }
    if cfg.jwt_signing_kid not in cfg.jwt_keys:
        raise DomainError("this function is not given JWT_SECRET (MOUNTED_SECRETS), so it issues no tokens")
    token = jwt.encode(claims, cfg.jwt_keys[cfg.jwt_signing_kid], algorithm=ALGORITHM,
                       headers={"kid": cfg.jwt_signing_kid})
    return token, expires


# A client presents the same access token on every request of its 15 minutes (heartbeats above
# all). A token's signature and claims cannot change, so each distinct token is verified once per
# process; expiry is still checked on every use. Keyed by the token itself and the settings object,
# so a configuration reload (new keys) verifies afresh.
_VERIFIED_MAX = 4096
_verified: dict[tuple[str, int], AccessClaims] = {}


def verify_access_token(token: str, cfg: Environment | None = None) -> AccessClaims:
    cfg = cfg or environment()
    key = (token, id(cfg))
    cached = _verified.get(key)
    if cached is not None:
        if cached.expires_at <= time.time():
            _verified.pop(key, None)
            raise Unauthenticated("access token expired", error="token expired")
        return cached
    claims = _verify(token, cfg)
    if len(_verified) >= _VERIFIED_MAX:
        _verified.clear()  # crude but bounded; a miss only costs one verification
    _verified[key] = claims
    return claims


def _verify(token: str, cfg: Environment) -> AccessClaims:
    import jwt

    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthenticated("malformed access token", error="invalid token") from None
    key = cfg.jwt_keys.get(str(header.get("kid", "")))
    if key is None or header.get("alg") != ALGORITHM:
        raise Unauthenticated("access token signed with an unknown key or algorithm", error="invalid token")
    try:
        claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=cfg.jwt_audience, issuer=cfg.jwt_issuer,
                            options={"require": REQUIRED_CLAIMS})
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("access token expired", error="token expired") from None
    except jwt.PyJWTError:
        raise Unauthenticated("invalid access token", error="invalid token") from None
    groups = claims.get("groups") or []
    # Every access token names its login family: a token without one (however well signed) would
    # skip the revocation check, so it is no token of ours.
    if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("sid"), str) \
            or not isinstance(groups, list):
        raise Unauthenticated("invalid access token", error="invalid token")
    return AccessClaims(
        user_id=claims["sub"],
        username=str(claims.get("username", "")),
        role=str(claims.get("role", "user")),
        groups=tuple(str(g) for g in groups),
        token_id=str(claims.get("jti", "")),
        family_id=claims["sid"],
        expires_at=int(claims["exp"]),
    )
