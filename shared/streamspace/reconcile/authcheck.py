"""The ingress forward-auth decision: may this caller reach this session's desktop?

The ingress controller asks `GET /api/v1/auth/session-check` before every request to
`<session>.<ingress domain>` and passes the original request's headers. Both controllers pass the
CLIENT's own headers along too, so the session host is read only from the one header the configured
controller (setting INGRESS_CONTROLLER, the same one that picks the Ingress annotations) sets itself:
- `traefik` (ForwardAuth, trustForwardHeader off): `X-Forwarded-Host`, overwritten with the
  request's Host (traefik pkg/middlewares/auth/forward.go, writeHeader);
- `nginx` (ingress-nginx auth-url): the host of `X-Original-URL`, set to
  `$scheme://$http_host$request_uri` in the auth location (nginx.tmpl); `X-Forwarded-Host` there
  is whatever the client sent.
A request whose other host header names a different host is refused: it can only come from a client
trying to steer the check.
The caller's access token comes from `Authorization: Bearer` or the cookie `streamspace_session`
(a stream's own Basic credentials are ignored in favour of the cookie).
Answer: 200 (with `X-Auth-Request-User`) for the session's owner or an admin, 401 without a valid
login, 403 for anyone else, with ONE message whether or not the session exists (no probing for
other users' sessions). The token check is CPU only; everything else is ONE indexed query
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


NOT_YOURS = "you may not reach this session"


def _url_host(value: str) -> str:
    """The host of an absolute http(s) URL ('' for anything else)."""
    parts = urlsplit(value.strip())
    return parts.netloc if parts.scheme in ("http", "https") else ""


def _bare_host(host: str) -> str:
    """Lowercased, without userinfo, port or trailing dot; '' for an IP literal (never a session host)."""
    host = host.strip().rpartition("@")[2]
    if host.startswith("["):
        return ""
    return host.split(":")[0].strip().lower().rstrip(".")


def forwarded_host(headers: Any, controller: str) -> str:
    """The host the client asked for, from the header `controller` sets ('' when there is none).

    Forbidden when the other controller's host header is present and names another host.
    """
    get = headers.get
    original_url = (get("X-Original-URL") or "").strip()
    forwarded = (get("X-Forwarded-Host") or "").strip()
    if controller == "nginx":
        host, other = _bare_host(_url_host(original_url)), forwarded
    else:
        if "," in forwarded:  # Traefik sets exactly one host; a list was written by someone else
            raise Forbidden("conflicting host headers", error="forbidden")
        host, other = _bare_host(forwarded), _url_host(original_url)
    if other and _bare_host(other) != host:
        raise Forbidden("conflicting host headers", error="forbidden")
    return host


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
    host = forwarded_host(headers, settings().ingress_controller)
    session, _, domain = host.partition(".")
    if not session or not domain:
        raise Forbidden("the request names no session host", error="forbidden")
    row = fetch_one(_CHECK_SQL, {"sub": claims.user_id, "sid": claims.family_id, "ns": settings().namespace,
                                 "session": session})
    require_standing(row)
    assert row is not None
    if domain != (row["domain"] or "streamspace.local"):
        raise Forbidden("the request names no session host", error="forbidden")
    admin = row["role"] == "admin"
    exists = row["state"] is not None and row["state"] != "terminated"
    owner = row["owner_id"] == claims.user_id if row["owner_id"] is not None else \
        row["owner"] == user_label(row["username"])
    if not exists or not (owner or admin):
        # One answer for "no such session" and "not yours": the check must not reveal which it was.
        raise Forbidden(NOT_YOURS, error="forbidden")
    return Admitted(username=row["username"], session=session, admin=admin)
