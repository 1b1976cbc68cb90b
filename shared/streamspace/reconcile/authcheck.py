"""The ingress forward-auth decision: may this request reach this session's desktop?

The ingress controller asks `GET /api/v1/auth/session-check` before every request to
`<session>.<ingress domain>`, WebSocket upgrades included, and passes the original request's
headers. Both controllers pass the CLIENT's own headers along too, so the original request is read
only from the headers the configured controller (setting INGRESS_CONTROLLER, the same one that
picks the Ingress annotations) sets itself:
- `traefik` (ForwardAuth, trustForwardHeader off): `X-Forwarded-Host`, `X-Forwarded-Uri` and
  `X-Forwarded-Method`, overwritten from the request (traefik pkg/middlewares/auth/forward.go,
  writeHeader);
- `nginx` (ingress-nginx auth-url): `X-Original-URL`, set to `$scheme://$http_host$request_uri`,
  and `X-Original-Method` in the auth location (nginx.tmpl); `X-Forwarded-Host` there is whatever
  the client sent.
A request whose other host header names a different host is refused: it can only come from a client
trying to steer the check.

The credential is the session host's cookie (streamspace.desktop.access), and nothing else: no
bearer token, no API cookie. The desktop container receives whatever the browser sends it, so it
must never be handed a credential wider than its own session. One request is let through without
the cookie: `GET /.streamspace/auth?ticket=...` with a ticket that can still be redeemed on this
very session; the Ingress routes that exact path to auth-check, which spends the ticket and sets
the cookie (`redeem_headers`).

Answer: 200 (with `X-Auth-Request-User`) for the session's owner or an admin, 401 without a valid
cookie for this session, 403 for anyone else, with ONE message whether or not the session exists
(no probing for other users' sessions). ONE indexed query, no Kubernetes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from streamspace.config import environment
from streamspace.desktop.access import (
    AUTH_PATH,
    Admitted,
    admit,
    cookie_name,
    redeem,
    set_cookie_header,
    ticket_pending,
)
from streamspace.domain.errors import Forbidden, Unauthenticated

USER_HEADER = "X-Auth-Request-User"

__all__ = ["USER_HEADER", "Admitted", "check", "forwarded_host", "plain_host", "redeem_headers", "session_host_parts"]


def _url_host(value: str) -> str:
    """The host of an absolute http(s) URL ('' for anything else)."""
    parts = urlsplit(value.strip())
    return parts.netloc if parts.scheme in ("http", "https") else ""


def plain_host(host: str) -> str:
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
        host, other = plain_host(_url_host(original_url)), forwarded
    else:
        if "," in forwarded:  # Traefik sets exactly one host; a list was written by someone else
            raise Forbidden("conflicting host headers", error="forbidden")
        host, other = plain_host(forwarded), _url_host(original_url)
    if other and plain_host(other) != host:
        raise Forbidden("conflicting host headers", error="forbidden")
    return host


def forwarded_request(headers: Any, controller: str) -> tuple[str, str, str]:
    """(method, path, query) of the original request, from the headers `controller` sets."""
    get = headers.get
    if controller == "nginx":
        method, uri = get("X-Original-Method") or "", get("X-Original-URL") or ""
    else:
        method, uri = get("X-Forwarded-Method") or "", get("X-Forwarded-Uri") or ""
    parts = urlsplit(uri.strip())
    return method.strip().upper(), parts.path, parts.query


def session_host_parts(host: str) -> tuple[str, str]:
    """(session, domain) of a session host; Forbidden when the host names no session."""
    session, _, domain = host.partition(".")
    if not session or not domain:
        raise Forbidden("the request names no session host", error="forbidden")
    return session, domain


def _redeem_request(headers: Any, controller: str, session: str) -> bool:
    method, path, query = forwarded_request(headers, controller)
    if method != "GET" or path != AUTH_PATH:
        return False
    tickets = parse_qs(query).get("ticket") or []
    return len(tickets) == 1 and ticket_pending(tickets[0], session)


def check(headers: Any, cookies: Any) -> Admitted | None:
    """Admit the owner of the session the forwarded host names, or an admin, holding that
    session's cookie; raise otherwise. None: a ticket's redeem request, let through without a user."""

    cfg = environment()
    host = forwarded_host(headers, cfg.ingress_controller)
    session, _, domain = host.partition(".")
    if session and domain and _redeem_request(headers, cfg.ingress_controller, session):
        return None
    cookie = cookies.get(cookie_name(cfg.production))
    if not cookie:
        raise Unauthenticated("open this desktop from StreamSpace to reach it", error="missing credential",
                              scheme=None)
    session, domain = session_host_parts(host)
    return admit(cookie, session, domain)


def redeem_headers(host: str, ticket: str | None, client_ip: str = "") -> dict[str, str]:
    """`GET /.streamspace/auth?ticket=` on a session host: spend the ticket; the headers of the 303
    that sets the host's cookie and sends the browser to the desktop. The session comes from the
    request's own Host, which the Ingress matched against this session's rule (a client-set
    X-Forwarded-Host is never read)."""
    session, domain = session_host_parts(plain_host(host))
    grant, lifetime = redeem(ticket, session, domain, client_ip)
    return {"Location": "/", "Set-Cookie": set_cookie_header(grant, lifetime, environment().production),
            # The ticket is in this URL: never let it leak on to the next page's Referer.
            "Referrer-Policy": "no-referrer"}
