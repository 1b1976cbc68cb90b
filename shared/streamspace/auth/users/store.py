"""The users store: the only code of the users package that speaks SQL (the `users` table, and the
group ids a user object lists). Every function takes the caller's connection, except the two
one-statement reads that open their own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamspace.db import compose, fetch_one, update_by_id
from streamspace.domain.errors import Conflict

if TYPE_CHECKING:
    from streamspace.db import Connection

    Conn = Connection

# Fixed SQL fragments composed with streamspace.db.compose (never with values: those are always parameters).
USER_COLUMNS = """u.id::text AS id, u.username, u.email, u.full_name, u.role, u.provider, u.active,
       u.created_at, u.updated_at, u.last_login,
       ARRAY(SELECT gm.group_id::text FROM group_members gm WHERE gm.user_id = u.id ORDER BY gm.group_id) AS groups"""
_FILTER = ("(%(role)s::text IS NULL OR u.role = %(role)s)"
           " AND (%(provider)s::text IS NULL OR u.provider = %(provider)s)"
           " AND (%(active)s::boolean IS NULL OR u.active = %(active)s)")


def _duplicate(exc: Any) -> Conflict:
    constraint = getattr(exc.diag, "constraint_name", "") or ""
    if "email" in constraint:
        return Conflict("a user with this email already exists", error="email taken")
    return Conflict("a user with this username already exists", error="username taken")


def by_username(username: str) -> dict[str, Any] | None:
    """{id, username, active} of the user of that name, or None."""
    return fetch_one("SELECT id::text AS id, username, active FROM users WHERE username = %s", (username,))


def name_and_provider(user_id: str) -> dict[str, Any] | None:
    return fetch_one("SELECT username, provider FROM users WHERE id = %s", (user_id,))


def credentials(conn: Conn, *, username: str | None = None, user_id: str | None = None) -> dict[str, Any] | None:
    """What a login checks: {id, username, role, active, provider, password_hash}, by name or id."""
    row = conn.execute("SELECT id::text AS id, username, role, active, provider, password_hash FROM users"
                       " WHERE username = %s OR id = %s::uuid", (username, user_id)).fetchone()
    return dict(row) if row else None


def set_password_hash(conn: Conn, user_id: str, password_hash: str, *, changed: bool = False) -> None:
    """A new hash: `changed` for a new password (the row's updated_at moves), not for a rehash of the same one."""
    if changed:
        conn.execute("UPDATE users SET password_hash = %s, updated_at = now() WHERE id = %s", (password_hash, user_id))
    else:
        conn.execute("UPDATE users SET password_hash = %s WHERE id = %s", (password_hash, user_id))


def mark_login(conn: Conn, user_id: str) -> None:
    conn.execute("UPDATE users SET last_login = now() WHERE id = %s", (user_id,))


def load(conn: Conn, user_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    query = compose("SELECT {cols} FROM users u WHERE u.id = %s {lock}", cols=USER_COLUMNS,
                    lock="FOR UPDATE OF u" if lock else "")
    row = conn.execute(query, (user_id,)).fetchone()
    return None if row is None else dict(row)


def page(conn: Conn, *, role: str | None, provider: str | None, active: bool | None, limit: int,
         offset: int) -> tuple[list[dict[str, Any]], int]:
    params = {"role": role, "provider": provider, "active": active, "limit": limit, "offset": offset}
    total = conn.execute(compose("SELECT count(*) AS n FROM users u WHERE {where}", where=_FILTER), params).fetchone()
    rows = conn.execute(compose("SELECT {cols} FROM users u WHERE {where} ORDER BY u.username"
                                " LIMIT %(limit)s OFFSET %(offset)s", cols=USER_COLUMNS, where=_FILTER),
                        params).fetchall()
    return [dict(r) for r in rows], int(total["n"]) if total else 0


def insert_local(conn: Conn, username: str, email: str, full_name: str, role: str, password_hash: str) -> str:
    """A local user's row; its id. A taken username or email is 409."""
    import psycopg2.errors

    try:
        row = conn.execute(
            "INSERT INTO users (username, email, full_name, role, provider, password_hash)"
            " VALUES (%s, %s, %s, %s, 'local', %s) RETURNING id::text AS id",
            (username, email, full_name, role, password_hash)).fetchone()
    except psycopg2.errors.UniqueViolation as exc:
        raise _duplicate(exc) from None
    if row is None:
        raise RuntimeError("invariant broken: row is None")
    return str(row["id"])


def update(conn: Conn, user_id: str, changes: dict[str, Any]) -> None:
    """Set the given columns (names from the service, never from a client). A taken email is 409."""
    import psycopg2.errors

    try:
        update_by_id(conn, "users", user_id, changes)
    except psycopg2.errors.UniqueViolation as exc:
        raise _duplicate(exc) from None


def delete(conn: Conn, user_id: str) -> None:
    conn.execute("DELETE FROM users WHERE id = %s", (user_id,))


def usernames_normalising_like(conn: Conn, prefix: str) -> list[str]:
    """Usernames whose DNS-label form starts with `prefix`, after taking the lock that serialises
    label checks with user inserts (held until the caller's transaction ends)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (0x5353554C,))  # "SSUL": one label check at a time
    rows = conn.execute("SELECT username FROM users WHERE regexp_replace(username, '[^a-z0-9]+', '-', 'g')"
                        " LIKE %s", (prefix.replace("%", "").replace("_", r"\_") + "%",)).fetchall()
    return [str(row["username"]) for row in rows]


def active_admins_other_than(conn: Conn, user_id: str) -> int:
    row = conn.execute("SELECT count(*) AS n FROM users WHERE role = 'admin' AND active AND id <> %s",
                       (user_id,)).fetchone()
    return int(row["n"]) if row else 0


def lock_admins(conn: Conn) -> None:
    """Serialise every change that could remove an active admin (two admins demoting each other
    at once must not leave none)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (0x53544144,))  # "STAD"


def unterminated_sessions(conn: Conn, user_id: str) -> int:
    """How many of the user's sessions run or hibernate (not terminated: a session holds or has ended).
    Read from the sessions package's published view (migration 0022): that package sits above users."""
    held = conn.execute("SELECT count(*) AS n FROM session_holdings WHERE user_id = %s", (user_id,)).fetchone()
    return int(held["n"]) if held else 0
