"""The `profiles`, `profile_purges` and `profile_failures` tables: the only code that speaks SQL to them."""

from __future__ import annotations

from typing import Any

from streamspace.db import execute, fetch_all, fetch_one

COLUMNS = ("p.id::text AS id, p.user_id::text AS user_id, u.username, p.object_key, p.status, p.is_current,"
           " p.size_bytes, p.sha256, p.session, p.created_at")


def insert_uploading(user_id: str, object_key: str, size: int, sha256: str, session: str | None) -> str:
    row = fetch_one("INSERT INTO profiles (user_id, object_key, status, size_bytes, sha256, session)"
                    " VALUES (%s, %s, 'uploading', %s, %s, %s) RETURNING id::text AS id",
                    (user_id, object_key, size, sha256, session))
    if row is None:
        raise RuntimeError("invariant broken: row is None")
    return str(row["id"])


def get(profile_id: str) -> dict[str, Any] | None:
    return fetch_one(f"SELECT {COLUMNS} FROM profiles p JOIN users u ON u.id = p.user_id"  # noqa: S608 - constant
                     " WHERE p.id = %s", (profile_id,))


def current(user_id: str) -> dict[str, Any] | None:
    return fetch_one(f"SELECT {COLUMNS} FROM profiles p JOIN users u ON u.id = p.user_id"  # noqa: S608 - constant
                     " WHERE p.user_id = %s AND p.is_current", (user_id,))


def list_for(user_id: str | None, limit: int) -> list[dict[str, Any]]:
    """A user's versions (None: everyone's), newest first."""
    return fetch_all(f"SELECT {COLUMNS} FROM profiles p JOIN users u ON u.id = p.user_id"  # noqa: S608 - constant
                     " WHERE p.status = 'ready' AND (%s::uuid IS NULL OR p.user_id = %s::uuid)"
                     " ORDER BY p.created_at DESC, p.id LIMIT %s", (user_id, user_id, limit))


def ready_bytes(conn: Any, user_id: str, excluding: str | None = None) -> int:
    row = conn.execute("SELECT coalesce(sum(size_bytes), 0) AS total FROM profiles"
                       " WHERE user_id = %s AND status = 'ready' AND (%s::uuid IS NULL OR id <> %s::uuid)",
                       (user_id, excluding, excluding)).fetchone()
    return int(row["total"])


def make_current(conn: Any, user_id: str, profile_id: str) -> None:
    """Inside the caller's transaction: this ready version becomes the user's current one."""
    conn.execute("UPDATE profiles SET is_current = false WHERE user_id = %s AND is_current", (user_id,))
    conn.execute("UPDATE profiles SET status = 'ready', is_current = true WHERE id = %s", (profile_id,))


def older_than_newest(conn: Any, user_id: str, keep: int) -> list[dict[str, Any]]:
    """Ready, not current versions beyond the newest `keep` (retention)."""
    return conn.execute("SELECT id::text AS id, object_key FROM profiles WHERE user_id = %s AND status = 'ready'"
                        " AND NOT is_current ORDER BY created_at DESC, id OFFSET %s",
                        (user_id, max(0, keep - 1))).fetchall()


def superseded(conn: Any, user_id: str, session: str | None, profile_id: str) -> list[dict[str, Any]]:
    """The ready, not current versions saved earlier by the same session (none when it has no name)."""
    if not session:
        return []
    return conn.execute("SELECT id::text AS id, object_key FROM profiles WHERE user_id = %s AND session = %s"
                        " AND status = 'ready' AND NOT is_current AND id <> %s",
                        (user_id, session, profile_id)).fetchall()


def delete(profile_id: str, conn: Any = None) -> bool:
    sql = "DELETE FROM profiles WHERE id = %s AND NOT is_current"
    if conn is not None:
        return bool(conn.execute(sql, (profile_id,)).rowcount == 1)
    return execute(sql, (profile_id,)) == 1


def user_active(user_id: str) -> bool:
    row = fetch_one("SELECT active FROM users WHERE id = %s", (user_id,))
    return bool(row and row["active"])


def stale_uploads(user_id: str, hours: int) -> list[dict[str, Any]]:
    return fetch_all("SELECT id::text AS id, object_key FROM profiles WHERE user_id = %s AND status = 'uploading'"
                     " AND created_at < now() - make_interval(hours => %s)", (user_id, hours))


# -- a deleted user's objects (rows made by the users_purge_profiles trigger) ------------------------

def pending_purges(limit: int) -> list[dict[str, Any]]:
    return fetch_all("SELECT object_key FROM profile_purges ORDER BY requested_at, object_key LIMIT %s", (limit,))


def purged(keys: list[str]) -> None:
    execute("DELETE FROM profile_purges WHERE object_key = ANY(%s)", (keys,))


def purge_failed(keys: list[str], reason: str) -> None:
    execute("UPDATE profile_purges SET attempts = attempts + 1, last_error = %s WHERE object_key = ANY(%s)",
            (reason[:500], keys))


def purges_by_user() -> list[dict[str, Any]]:
    return fetch_all("SELECT user_id::text AS user_id, username, count(*) AS objects, sum(size_bytes) AS size_bytes,"
                     " min(requested_at) AS requested_at, max(attempts) AS attempts,"
                     " (array_agg(last_error ORDER BY attempts DESC) FILTER (WHERE last_error IS NOT NULL))[1]"
                     " AS last_error FROM profile_purges GROUP BY user_id, username ORDER BY min(requested_at)")


def purge_counts() -> dict[str, int]:
    row = fetch_one("SELECT count(*) FILTER (WHERE attempts = 0) AS waiting,"
                    " count(*) FILTER (WHERE attempts > 0) AS failing FROM profile_purges")
    return {"waiting": int(row["waiting"]), "failing": int(row["failing"])} if row else {"waiting": 0, "failing": 0}


# -- failed restores and saves --------------------------------------------------------------------------

FAILURES_KEPT_DAYS = 30


def record_failure(user_id: str, session: str, operation: str, reason: str) -> None:
    execute("INSERT INTO profile_failures (user_id, session, operation, reason) VALUES (%s, %s, %s, %s)",
            (user_id, session, operation, reason))
    execute("DELETE FROM profile_failures WHERE at < now() - make_interval(days => %s)", (FAILURES_KEPT_DAYS,))


def recent_failures(user_id: str, limit: int) -> list[dict[str, Any]]:
    return fetch_all("SELECT operation, session, reason, at FROM profile_failures WHERE user_id = %s"
                     " ORDER BY at DESC, id DESC LIMIT %s", (user_id, limit))


def failure_counts(hours: int) -> dict[str, int]:
    rows = fetch_all("SELECT operation, count(*) AS n FROM profile_failures"
                     " WHERE at > now() - make_interval(hours => %s) GROUP BY operation", (hours,))
    counts = {"restore": 0, "save": 0}
    counts.update({r["operation"]: int(r["n"]) for r in rows})
    return counts
