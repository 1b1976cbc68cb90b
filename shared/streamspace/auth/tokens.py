"""Access tokens: short-lived HS256 JWTs with a key id, so keys can rotate.

Verification pins the algorithm (no `none`, no RS/HS confusion), requires exp, iat, iss, aud, sub
and sid, and accepts every configured verification key by its `kid`.

The compact HS256 JWS (RFC 7515, 7519) is built and checked here with the standard library's HMAC
rather than PyJWT: importing `jwt` imports cryptography's X.509, RSA, EC and cipher modules (it
supports every algorithm), a large share of every function's cold start, and these tokens need
none of them. The checks are PyJWT's, with no leeway: the signature (constant-time), then exp
(expired when exp <= now), iat and nbf (not valid before them), iss, aud, and string sub and jti.
PyJWT stays for single sign-on's RS/ES ID tokens; the tests cross-check both ways.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
import uuid
from typing import Any

from streamspace.config import Environment, environment
from streamspace.domain.errors import DomainError, Unauthenticated
from streamspace.records import record

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "sid"]


@record
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
    token = _sign(claims, cfg.jwt_keys[cfg.jwt_signing_kid], cfg.jwt_signing_kid)
    return token, expires


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def _b64decode(text: str) -> bytes:
    """Strict base64url without padding (RFC 7515 section 2): any other character is refused."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json_part(text: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(text))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _Invalid from None
    if not isinstance(value, dict):
        raise _Invalid
    return value


def _sign(claims: dict[str, Any], secret: str, kid: str) -> str:
    header = {"alg": ALGORITHM, "kid": kid, "typ": "JWT"}
    signing_input = (_b64encode(json.dumps(header, separators=(",", ":")).encode()) + "."
                     + _b64encode(json.dumps(claims, separators=(",", ":")).encode()))
    signature = hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64encode(signature)


class _Invalid(Exception):
    """A token that is not a well-formed, correctly signed HS256 JWS of ours (the reason is not told)."""


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid
    try:
        return int(value)
    except (ValueError, OverflowError):  # NaN, Infinity (Python's JSON reads both)
        raise _Invalid from None


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
    parts = token.split(".")
    try:
        if len(parts) != 3:
            raise _Invalid
        header = _json_part(parts[0])
    except _Invalid:
        raise Unauthenticated("malformed access token", error="invalid token") from None
    key = cfg.jwt_keys.get(str(header.get("kid", "")))
    # "crit" names extensions the verifier must understand (RFC 7515 4.1.11): we understand none
    if key is None or header.get("alg") != ALGORITHM or "crit" in header:
        raise Unauthenticated("access token signed with an unknown key or algorithm", error="invalid token")
    try:
        signature = _b64decode(parts[2])
        expected = hmac.new(key.encode(), f"{parts[0]}.{parts[1]}".encode("ascii"), hashlib.sha256).digest()
        if not hmac.compare_digest(signature, expected):
            raise _Invalid
        claims = _json_part(parts[1])
        if any(claims.get(name) is None for name in REQUIRED_CLAIMS):
            raise _Invalid
        now = time.time()
        expires, issued = _integer(claims["exp"]), _integer(claims["iat"])
        if issued > now or ("nbf" in claims and _integer(claims["nbf"]) > now):
            raise _Invalid
        if expires <= now:
            raise Unauthenticated("access token expired", error="token expired")
        audience = claims["aud"]
        audiences = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else None
        if claims["iss"] != cfg.jwt_issuer or audiences is None or cfg.jwt_audience not in audiences \
                or not all(isinstance(a, str) for a in audiences) \
                or not isinstance(claims.get("jti", ""), str):
            raise _Invalid
    except (_Invalid, ValueError, binascii.Error):
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
