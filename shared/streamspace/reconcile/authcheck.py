"""The ingress forward-auth decision: may this caller reach this session's desktop?

The ingress controller (Traefik ForwardAuth, nginx auth-url) asks `GET /api/v1/auth/session-check`
before every request to `<session>.<ingress domain>` and passes the original request's headers:
- the session, from `X-Forwarded-Host` (Traefik, and nginx too) or the host of `X-Original-URL`
  (nginx) / `X-Forwarded-Uri` when it is absolute;
- the caller's access token, from `Authorization: Bearer` or the cookie `streamspace_session`
  (a stream's own Basic credentials are ignored in favour of the cookie).
Answer: 200 (with `X-Auth-Request-User`) for the session's owner or an admin, 401 without a valid
login, 403 for anyone else. The token check is CPU only; everything else is ONE indexed query
(the caller's user and login family, the session's index row, the ingress domain). No Kubernetes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from streamspace.http.errors import Forbidden, Unauthorized

COOKIE_NAME = "streamspace_session"
USER_HEADER = "X-Auth-Request-User"

_CHECK_SQL = """
SELECT u.username, u.role, u.active,
       (%(sid)s::uuid IS NOT NULL AND (f.id IS NULL OR f.revoked_at IS NOT NULL)) AS revoked,
       s.user_id::text AS owner_id, s.username AS owner, s.state,
       (SELECT c.value #>> '{}' FROM configuration c WHERE c.key = 'ingress.domain') AS domain
  FROM users u
  LEFT JOIN token_families f ON f.id = %(sid)s::uuid AND f.user_id = u.id
  LEFT JOIN sessions s ON s.namespace = %(ns)s AND s.name = %(session)s
 WHERE u.id = %(sub)s::uuid
"""


@dataclass(frozen=True)
class Admitted:
    username: str
    session: str
    admin: bool


def forwarded_host(headers: Any) -> str:
    """The host the client asked for, lowercased, without port ('' when the headers carry none)."""
    get = headers.get
    host = (get("X-Forwarded-Host") or "").split(",")[0].strip()
    if not host:
        for name in ("X-Original-URL", "X-Forwarded-Uri"):
            value = (get(name) or "").strip()
            if "://" in value:
                host = urlsplit(value).netloc
                break
    host = host.rpartition("@")[2]  # never trust userinfo
    if host.startswith("["):
        return ""  # an IP literal is never a session host
    return host.split(":")[0].strip().lower().rstrip(".")


def token_from(authorization: str | None, cookie: str | None) -> str:
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if cookie:
        return cookie.strip()
    raise Unauthorized("log in to reach this session", error="missing token")


def check(headers: Any, authorization: str | None, cookie: str | None) -> Admitted:
    """Admit the owner of the session the forwarded host names, or an admin; raise otherwise."""
    from streamspace.auth.principal import require_standing, verified_claims
    from streamspace.config import settings
    from streamspace.db import fetch_one
    from streamspace.domain.names import user_label

    claims = verified_claims(token_from(authorization, cookie))
    host = forwarded_host(headers)
    session, _, domain = host.partition(".")
    if not session or not domain:
        raise Forbidden("the request names no session host", error="forbidden")
    row = fetch_one(_CHECK_SQL, {"sub": claims.user_id, "sid": claims.family_id, "ns": settings().namespace,
                                 "session": session})
    require_standing(row)
    assert row is not None
    if domain != (row["domain"] or "streamspace.local"):
        raise Forbidden("the request names no session host", error="forbidden")
    if row["state"] is None or row["state"] == "terminated":
        raise Forbidden("no such session", error="forbidden")
    admin = row["role"] == "admin"
    owner = row["owner_id"] == claims.user_id if row["owner_id"] is not None else \
        row["owner"] == user_label(row["username"])
    if not (owner or admin):
        raise Forbidden("only the session's owner may reach it", error="forbidden")
    return Admitted(username=row["username"], session=session, admin=admin)
