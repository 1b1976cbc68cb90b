"""Who may open which desktop in a browser, and the credential that proves it on the session host.

The flow (issue 10, section 4):
1. `GET /api/v1/sessions/{id}/connect` issues a ticket: random, single use, valid for
   DESKTOP_TICKET_TTL (at most a minute), bound to the caller, its login and that session, and
   answers `openUrl` = `<session url>.streamspace/auth?ticket=...`.
2. The browser opens it. The session's Ingress routes exactly `/.streamspace/auth` to auth-check,
   which redeems the ticket (`redeem`): the ticket is deleted whatever happens next, so it can
   never be replayed; it must name the session whose host it arrived on. A new random grant is
   stored (digest only) and set as a host-only, HttpOnly, SameSite=Lax cookie (`__Host-` prefixed
   and Secure in production), then the browser is sent to `/`.
3. Every later request to the host, WebSocket upgrades included, passes the forward-auth check
   (`admit`): the cookie's grant must exist for THIS session, be unexpired and unrevoked, its user
   active, its login not logged out, the session not terminated, and its user still the session's
   owner or an admin. The desktop container receives this cookie with every request, so it carries
   nothing wider than the session itself: never the user's API token.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING, Any

from streamspace import audit
from streamspace.auth.principal import Principal
from streamspace.config import environment
from streamspace.db import transaction
from streamspace.desktop import store
from streamspace.domain.errors import Forbidden, Unauthenticated
from streamspace.domain.names import user_label
from streamspace.records import record

if TYPE_CHECKING:
    from streamspace.auth.principal import Principal
    from streamspace.db import Connection

AUTH_PATH = "/.streamspace/auth"
NOT_YOURS = "you may not reach this session"
COOKIE_BASE_NAME = "streamspace_desktop"
_MAX_SECRET_LENGTH = 128


@record
class Admitted:
    username: str
    session: str
    admin: bool


def cookie_name(production: bool) -> str:
    """`__Host-` in production: the browser then refuses the cookie unless it is Secure, host-only
    and for Path=/, so no sibling host (another desktop) can plant or widen it."""
    return f"__Host-{COOKIE_BASE_NAME}" if production else COOKIE_BASE_NAME


def set_cookie_header(value: str, max_age: int, production: bool) -> str:
    """The Set-Cookie value of a session host's grant: host-only (no Domain), HttpOnly, Lax."""
    parts = [f"{cookie_name(production)}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly", "SameSite=Lax"]
    if production:
        parts.append("Secure")
    return "; ".join(parts)


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _presented(value: str | None) -> str | None:
    value = (value or "").strip()
    return value if value and len(value) <= _MAX_SECRET_LENGTH else None


def open_url(session_url: str, ticket: str) -> str:
    return f"{session_url.rstrip('/')}{AUTH_PATH}?ticket={ticket}"


def issue_ticket(conn: Connection, caller: Principal, namespace: str, session: str) -> str:
    """A new ticket for `caller` to open `session` (inside the caller's transaction)."""

    ticket = secrets.token_urlsafe(32)
    store.issue_ticket(conn, digest(ticket), caller.user_id, caller.family_id, namespace, session,
                       environment().desktop_ticket_ttl_seconds)
    return ticket


def _may_reach(row: dict[str, Any], user_id: str) -> bool:
    """The user is the session's owner (by id, or by name for a Session applied with kubectl) or an admin."""

    if row["role"] == "admin":
        return True
    if row["owner_id"] is not None:
        return bool(row["owner_id"] == user_id)
    return bool(row["owner"] == user_label(row["username"]))


def _refused() -> Unauthenticated:
    # One answer for every bad ticket: which check failed is for the audit log, not the client.
    return Unauthenticated("this link is invalid, expired or already used; open the desktop again from StreamSpace",
                           error="invalid ticket", scheme=None)


def _refusal_reason(row: dict[str, Any], session: str, namespace: str, domain: str) -> str | None:
    """Why a ticket that was found may not open `session` on `<session>.<domain>` (None: it may)."""
    if not row["fresh"]:
        return "expired"
    if row["session_name"] != session or row["session_namespace"] != namespace \
            or domain != (row["domain"] or "streamspace.local"):
        return "another session's host"
    if row["revoked"]:
        return "logged out"
    if not row["active"]:
        return "account disabled"
    if row["state"] in (None, "terminated"):
        return "session ended"
    if not _may_reach(row, row["user_id"]):
        return "not the owner"
    return None


def redeem(ticket: str | None, session: str, domain: str, client_ip: str = "") -> tuple[str, int]:
    """Exchange a ticket presented on the host `<session>.<domain>` for a grant: (grant secret,
    lifetime in seconds). The ticket is spent even when it is refused; both outcomes are audited
    (`session.open`, `session.open.refused` with the reason)."""

    presented = _presented(ticket)
    if presented is None:
        raise _refused()
    cfg = environment()
    grant = secrets.token_urlsafe(32)
    with transaction() as conn:
        row = store.take_ticket(conn, digest(presented))
        if row is None:
            reason: str | None = "unknown or used"
        else:
            reason = _refusal_reason(row, session, cfg.sessions_namespace, domain)
            actor = Principal(row["user_id"], row["username"], row["role"], (), row["family_id"])
            if reason is None:
                store.add_grant(conn, digest(grant), row["user_id"], row["family_id"], row["session_namespace"],
                                session, cfg.desktop_access_ttl_seconds)
                audit.record(conn, actor, "session.open", "session", session, client_ip)
            else:
                audit.record(conn, actor, "session.open.refused", "session", session, client_ip,
                             {"reason": reason, "ticketFor": row["session_name"]})
    if reason is not None:
        raise _refused()  # after the commit: the ticket stays spent
    return grant, cfg.desktop_access_ttl_seconds


def ticket_pending(ticket: str | None, session: str) -> bool:
    """Whether `ticket` could still be redeemed on `session`'s host (read only: the forward-auth
    check lets exactly such a redeem request through to auth-check, which spends it)."""

    presented = _presented(ticket)
    return presented is not None and store.ticket_is_live(digest(presented), environment().sessions_namespace, session)


def admit(cookie: str | None, session: str, domain: str) -> Admitted:
    """The forward-auth decision for a request to `<session>.<domain>` carrying `cookie`."""

    presented = _presented(cookie)
    if presented is None:
        raise Unauthenticated("open this desktop from StreamSpace to reach it", error="missing credential",
                              scheme=None)
    row = store.grant_for_session(digest(presented), environment().sessions_namespace, session)
    if row is None or row["ended"] or row["revoked"]:
        # No grant for THIS session (forged, copied from another session's host, logged out, ended).
        raise Unauthenticated("open this desktop from StreamSpace to reach it", error="invalid credential",
                              scheme=None)
    if domain != (row["domain"] or "streamspace.local"):
        raise Forbidden("the request names no session host", error="forbidden")
    if not row["active"]:
        raise Forbidden("this account is disabled", error="account disabled")
    if row["state"] == "terminated" or not _may_reach(row, row["user_id"]):
        # One answer for "ended" and "not yours" (as for every refusal of the check).
        raise Forbidden(NOT_YOURS, error="forbidden")
    return Admitted(username=row["username"], session=session, admin=row["role"] == "admin")


def revoke_user(conn: Connection, user_id: str) -> int:
    """End every desktop cookie of a user (password change or reset, disable)."""

    return store.revoke_user_grants(conn, user_id)
