"""SQL of the desktop tickets and grants (migration 0008). Values are digests, never the secrets.
The session a ticket or grant opens is read from `session_owners`, the view the sessions package
publishes for it (migration 0022): that package sits above desktop access and calls it.

Like every access token, a ticket and a grant belong to a login (token family): one without a live
login (none recorded, or revoked) counts as revoked."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamspace.db import HotStatement, fetch_one

if TYPE_CHECKING:
    from streamspace.db import Connection

# A ticket: inserted by connect; the user's expired tickets are dropped in the same statement.
_ISSUE_TICKET_SQL = """
WITH expired AS (DELETE FROM desktop_tickets WHERE user_id = %(uid)s::uuid AND expires_at <= now())
INSERT INTO desktop_tickets (ticket_hash, user_id, family_id, session_namespace, session_name, expires_at)
VALUES (%(hash)s, %(uid)s::uuid, %(fid)s::uuid, %(ns)s, %(session)s, now() + make_interval(secs => %(ttl)s))
"""

# Redeeming: the DELETE is the single use (two concurrent redeems cannot both see the row), and
# the same statement reads everything the rules need about the user, its login and the session.
_TAKE_TICKET_SQL = """
WITH t AS (DELETE FROM desktop_tickets WHERE ticket_hash = %(hash)s RETURNING *)
SELECT t.user_id::text AS user_id, t.family_id::text AS family_id, t.session_namespace, t.session_name,
       t.expires_at > now() AS fresh, u.username, u.role, u.active,
       (f.id IS NULL OR f.revoked_at IS NOT NULL) AS revoked,
       s.user_id::text AS owner_id, s.username AS owner, s.state,
       (SELECT c.value #>> '{}' FROM configuration c WHERE c.key = 'ingress.domain') AS domain
  FROM t
  JOIN users u ON u.id = t.user_id
  LEFT JOIN token_families f ON f.id = t.family_id
  LEFT JOIN session_owners s ON s.namespace = t.session_namespace AND s.name = t.session_name
"""

_PEEK_TICKET_SQL = """
SELECT 1 AS ok FROM desktop_tickets
 WHERE ticket_hash = %(hash)s AND session_namespace = %(ns)s AND session_name = %(session)s AND expires_at > now()
"""

_ADD_GRANT_SQL = """
WITH ended AS (DELETE FROM desktop_grants
                WHERE user_id = %(uid)s::uuid AND (expires_at <= now() OR revoked_at IS NOT NULL))
INSERT INTO desktop_grants (grant_hash, user_id, family_id, session_namespace, session_name, expires_at)
VALUES (%(hash)s, %(uid)s::uuid, %(fid)s::uuid, %(ns)s, %(session)s, now() + make_interval(secs => %(ttl)s))
"""

# The forward-auth check of a session host: ONE statement, by the grant's primary key and for the
# host's own session only (a grant of any other session finds no row).
_GRANT_CHECK_SQL = """
SELECT u.username, u.role, u.active, g.user_id::text AS user_id,
       (f.id IS NULL OR f.revoked_at IS NOT NULL) AS revoked,
       (g.revoked_at IS NOT NULL OR g.expires_at <= now()) AS ended,
       s.user_id::text AS owner_id, s.username AS owner, s.state,
       (SELECT c.value #>> '{}' FROM configuration c WHERE c.key = 'ingress.domain') AS domain
  FROM desktop_grants g
  JOIN users u ON u.id = g.user_id
  JOIN session_owners s ON s.namespace = g.session_namespace AND s.name = g.session_name
  LEFT JOIN token_families f ON f.id = g.family_id
 WHERE g.grant_hash = %(hash)s AND g.session_namespace = %(ns)s AND g.session_name = %(session)s
"""


def issue_ticket(conn: Connection, digest: bytes, user_id: str, family_id: str | None,
                 namespace: str, session: str, ttl_seconds: int) -> None:
    conn.execute(_ISSUE_TICKET_SQL, {"hash": digest, "uid": user_id, "fid": family_id, "ns": namespace,
                                     "session": session, "ttl": ttl_seconds})


def take_ticket(conn: Connection, digest: bytes) -> dict[str, Any] | None:
    """Delete the ticket and answer what it said (None: no such ticket, or already used)."""
    return conn.execute(_TAKE_TICKET_SQL, {"hash": digest}).fetchone()  # type: ignore[no-any-return]


def ticket_is_live(digest: bytes, namespace: str, session: str) -> bool:
    return fetch_one(_PEEK_TICKET_SQL, {"hash": digest, "ns": namespace, "session": session}) is not None


def add_grant(conn: Connection, digest: bytes, user_id: str, family_id: str | None,
              namespace: str, session: str, ttl_seconds: int) -> None:
    conn.execute(_ADD_GRANT_SQL, {"hash": digest, "uid": user_id, "fid": family_id, "ns": namespace,
                                  "session": session, "ttl": ttl_seconds})


# The forward-auth check runs this before every request to a desktop: a hot statement.
_GRANT_CHECK = HotStatement("grant_check", _GRANT_CHECK_SQL)


def grant_for_session(digest: bytes, namespace: str, session: str) -> dict[str, Any] | None:
    return _GRANT_CHECK.fetch_one({"hash": digest, "ns": namespace, "session": session})


def revoke_user_grants(conn: Connection, user_id: str) -> int:
    """End every desktop cookie of a user (and drop its unused tickets)."""
    conn.execute("DELETE FROM desktop_tickets WHERE user_id = %s", (user_id,))
    return conn.execute("UPDATE desktop_grants SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL",
                        (user_id,)).rowcount


def end_session_access(conn: Connection, namespace: str, session: str) -> None:
    """A session stops holding (terminated, removed): its unused tickets go and its cookies are
    revoked, for good (a row that says running again later does not bring them back)."""
    conn.execute("DELETE FROM desktop_tickets WHERE session_namespace = %s AND session_name = %s",
                 (namespace, session))
    conn.execute("UPDATE desktop_grants SET revoked_at = now()"
                 " WHERE session_namespace = %s AND session_name = %s AND revoked_at IS NULL", (namespace, session))
