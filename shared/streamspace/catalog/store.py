"""The catalog store: the only code that speaks SQL to `repositories` (the admin's template
repositories, their credentials sealed, their sync state and lease) and `catalog_templates` (the
Template manifests each repository's last good sync found).

Values are always bound parameters; the fragments composed into statements are constants of this
module. A write that must share a transaction with its audit row takes the caller's connection.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from streamspace.db import compose, fetch_all, fetch_one, transaction
from streamspace.domain.errors import Conflict

if TYPE_CHECKING:
    from streamspace.db import Connection

    Conn = Connection

# The number of repositories and of catalog templates, each as one value, for a caller that puts them
# into a statement of its own (the platform summary, one round trip).
REPOSITORY_COUNT_SUBQUERY = "(SELECT count(*) FROM repositories)"
TEMPLATE_COUNT_SUBQUERY = "(SELECT count(*) FROM catalog_templates)"

# -- repositories ---------------------------------------------------------------------------------

_REPOSITORY_COLUMNS = (
    "id, name, url, branch, auth_type, status, error_message, file_errors, file_error_count, last_sync,"
    " last_attempt_at, last_commit, template_count, sync_requested_at, created_at, updated_at"
)


def repository_page(limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """A page of repositories by name (never the secret), and how many there are in all: one
    statement, plus a count only when the page is past the last row."""
    rows = fetch_all(compose("SELECT {columns}, count(*) OVER () AS total FROM repositories"
                             " ORDER BY name LIMIT %s OFFSET %s", columns=_REPOSITORY_COLUMNS), (limit, offset))
    if rows:
        return rows, int(rows[0]["total"])
    counted = fetch_one("SELECT count(*) AS n FROM repositories")
    return rows, int(counted["n"]) if counted else 0


def repository(repository_id: str) -> dict[str, Any] | None:
    """One repository (never the secret)."""
    return fetch_one(compose("SELECT {columns} FROM repositories WHERE id = %s", columns=_REPOSITORY_COLUMNS),
                     (repository_id,))


def repository_exists(repository_id: str) -> bool:
    return fetch_one("SELECT 1 AS x FROM repositories WHERE id = %s", (repository_id,)) is not None


def insert_repository(conn: Conn, name: str, url: str, url_normalized: str, branch: str, auth_type: str,
                      sealed_secret: bytes | None) -> str:
    """A new repository, pending, its first sync requested -> its id. A taken name, or a branch of a
    URL that is already a repository, is a Conflict."""
    import psycopg2.errors

    try:
        row = conn.execute(
            "INSERT INTO repositories (name, url, url_normalized, branch, auth_type, auth_secret, status,"
            " sync_requested_at) VALUES (%s, %s, %s, %s, %s, %s, 'pending', now()) RETURNING id",
            (name, url, url_normalized, branch, auth_type, sealed_secret),
        ).fetchone()
    except psycopg2.errors.UniqueViolation as exc:
        constraint = getattr(exc.diag, "constraint_name", "") or ""
        if "name" in constraint and "url" not in constraint:
            raise Conflict(f"a repository named {name!r} already exists", error="repository exists") from None
        raise Conflict(f"branch {branch} of {url} is already a repository", error="repository exists") from None
    if row is None:
        raise RuntimeError("invariant broken: row is None")
    return str(row["id"])


def delete_repository(conn: Conn, repository_id: str) -> dict[str, Any] | None:
    """Delete the repository (its catalog rows go with it) -> its name and url, None if there was none."""
    row: dict[str, Any] | None = conn.execute("DELETE FROM repositories WHERE id = %s RETURNING name, url",
                                              (repository_id,)).fetchone()
    return row


def request_sync(repository_ids: list[str] | None) -> list[str]:
    """Record a sync request on the given repositories (None: all) -> the ids that exist."""
    if repository_ids is None:
        rows = fetch_all("UPDATE repositories SET sync_requested_at = now() RETURNING id")
    else:
        rows = fetch_all("UPDATE repositories SET sync_requested_at = now() WHERE id = ANY(%s::uuid[]) RETURNING id",
                         (repository_ids,))
    return [str(r["id"]) for r in rows]


def repository_ids_by_url(urls_normalized: list[str], branch: str | None) -> list[str]:
    """The repositories of these normalised URLs, of `branch` (None: of any branch)."""
    rows = fetch_all("SELECT id FROM repositories WHERE url_normalized = ANY(%s::text[])"
                     " AND (%s::text IS NULL OR branch = %s::text)", (urls_normalized, branch, branch))
    return [str(r["id"]) for r in rows]


def all_repository_ids() -> list[str]:
    return [str(r["id"]) for r in fetch_all("SELECT id FROM repositories ORDER BY name")]


def due_repository_ids(interval_seconds: float, limit: int) -> list[str]:
    """Repositories whose lease is free and that are due: pending, left `syncing` by a crash, asked
    for, never attempted, or last attempted more than `interval_seconds` ago; requests first."""
    rows = fetch_all(
        "SELECT id FROM repositories"
        " WHERE (lease_expires_at IS NULL OR lease_expires_at < now())"
        "   AND (status IN ('pending', 'syncing') OR sync_requested_at IS NOT NULL OR last_attempt_at IS NULL"
        "        OR last_attempt_at < now() - make_interval(secs => %s))"
        " ORDER BY sync_requested_at NULLS LAST, last_attempt_at NULLS FIRST, name LIMIT %s",
        (float(interval_seconds), limit),
    )
    return [str(r["id"]) for r in rows]


# -- the sync lease and its outcome ---------------------------------------------------------------

def take_lease(repository_id: str, owner: str, lease_seconds: float) -> dict[str, Any] | None:
    """Take the repository's sync lease when it is free or expired (one conditional UPDATE) -> what
    a sync needs of the repository (its sealed secret too) and `lease_started_at`; None when another
    sync holds it or the repository does not exist."""
    return fetch_one(
        "UPDATE repositories SET status = 'syncing', lease_owner = %s,"
        " lease_expires_at = now() + make_interval(secs => %s), updated_at = now()"
        " WHERE id = %s AND (lease_expires_at IS NULL OR lease_expires_at < now())"
        " RETURNING id, name, url, branch, auth_type, auth_secret, now() AS lease_started_at",
        (owner, float(lease_seconds), repository_id),
    )


# Every finish (success or failure) releases the lease, stamps the attempt and clears a sync
# request made before this sync started (one made during it stays, so the next tick syncs again).
_SUCCESS = (
    "UPDATE repositories SET status = 'synced', error_message = '', file_errors = %(errors)s::jsonb,"
    " file_error_count = %(error_count)s, template_count = %(count)s, last_sync = now(), last_commit = %(commit)s,"
    " lease_owner = NULL, lease_expires_at = NULL, last_attempt_at = now(), updated_at = now(),"
    " sync_requested_at = CASE WHEN sync_requested_at <= %(started)s THEN NULL ELSE sync_requested_at END"
    " WHERE id = %(id)s"
)
_FAILURE_KEEP_ERRORS = (
    "UPDATE repositories SET status = 'failed', error_message = %(message)s,"
    " lease_owner = NULL, lease_expires_at = NULL, last_attempt_at = now(), updated_at = now(),"
    " sync_requested_at = CASE WHEN sync_requested_at <= %(started)s THEN NULL ELSE sync_requested_at END"
    " WHERE id = %(id)s AND lease_owner = %(owner)s RETURNING id"
)
_FAILURE_WITH_ERRORS = (
    "UPDATE repositories SET status = 'failed', error_message = %(message)s,"
    " file_errors = %(errors)s::jsonb, file_error_count = %(error_count)s,"
    " lease_owner = NULL, lease_expires_at = NULL, last_attempt_at = now(), updated_at = now(),"
    " sync_requested_at = CASE WHEN sync_requested_at <= %(started)s THEN NULL ELSE sync_requested_at END"
    " WHERE id = %(id)s AND lease_owner = %(owner)s RETURNING id"
)

_UPSERT = """
INSERT INTO catalog_templates (repository_id, name, display_name, description, category, app_type, icon, tags,
                               manifest, source_path)
SELECT %(repo)s, t.name, t.display_name, t.description, t.category, t.app_type, t.icon,
       coalesce(t.tags, '{}'), t.manifest, t.source_path
  FROM jsonb_to_recordset(%(rows)s::jsonb) AS t(name text, display_name text, description text, category text,
                                                app_type text, icon text, tags text[], manifest jsonb,
                                                source_path text)
ON CONFLICT (repository_id, name) DO UPDATE SET
    display_name = EXCLUDED.display_name, description = EXCLUDED.description, category = EXCLUDED.category,
    app_type = EXCLUDED.app_type, icon = EXCLUDED.icon, tags = EXCLUDED.tags, manifest = EXCLUDED.manifest,
    source_path = EXCLUDED.source_path, updated_at = now()
 WHERE (catalog_templates.manifest, catalog_templates.source_path)
       IS DISTINCT FROM (EXCLUDED.manifest, EXCLUDED.source_path)
"""


def replace_templates(repository_id: str, owner: str, started: datetime, rows: list[dict[str, Any]],
                      errors: list[dict[str, Any]], error_count: int, commit: str) -> bool:
    """Make the repository's catalog rows exactly `rows` (install counts kept) and record the sync's
    success, in one transaction that first checks the lease is still `owner`'s. False when it was
    lost (nothing written)."""
    with transaction() as conn:
        mine = conn.execute("SELECT id FROM repositories WHERE id = %s AND lease_owner = %s FOR UPDATE",
                            (repository_id, owner)).fetchone()
        if mine is None:
            return False
        conn.execute(_UPSERT, {"repo": repository_id, "rows": json.dumps(rows)})
        conn.execute("DELETE FROM catalog_templates WHERE repository_id = %s AND NOT (name = ANY(%s::text[]))",
                     (repository_id, [row["name"] for row in rows]))
        conn.execute(_SUCCESS, {"errors": json.dumps(errors), "error_count": error_count, "count": len(rows),
                                "commit": commit, "started": started, "id": repository_id})
    return True


def record_failure(repository_id: str, owner: str, started: datetime, message: str,
                   errors: list[dict[str, Any]] | None = None, error_count: int = 0) -> bool:
    """Record `failed` with the reason and release the lease, if it is still `owner`'s; the catalog
    rows stay as they were, and so do the file errors unless `errors` are given."""
    params: dict[str, Any] = {"message": message, "started": started, "id": repository_id, "owner": owner}
    sql = _FAILURE_KEEP_ERRORS
    if errors is not None:
        sql = _FAILURE_WITH_ERRORS
        params.update(errors=json.dumps(errors), error_count=error_count)
    return fetch_one(sql, params) is not None


# -- catalog templates ----------------------------------------------------------------------------

_TEMPLATE_COLUMNS = (
    "t.id, t.name, t.display_name, t.description, t.category, t.app_type, t.icon, t.tags, t.manifest,"
    " t.install_count, t.repository_id, r.name AS repository_name, r.url AS repository_url"
)
_TEMPLATES = "catalog_templates t JOIN repositories r ON r.id = t.repository_id"


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def template_page(*, category: str | None, tag: str | None, repository_id: str | None, query: str | None,
                  prefixes: list[str], limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """A page of catalog templates, most installed first, and how many match in all: one statement
    (the total rides along as a window count), plus a count only when the page is past the last row.

    `query` matches the full text (websearch syntax) or, as a substring, the name or display name;
    each of `prefixes` (word characters only, so nothing reaches to_tsquery as an operator) also
    matches as the start of a word."""
    where = ["true"]
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if category is not None:
        where.append("lower(t.category) = lower(%(category)s)")
        params["category"] = category
    if tag is not None:
        where.append("t.tags @> ARRAY[%(tag)s]::text[]")
        params["tag"] = tag
    if repository_id is not None:
        where.append("t.repository_id = %(repository)s")
        params["repository"] = repository_id
    if query is not None and query.strip():
        clauses = ["t.search @@ websearch_to_tsquery('simple', %(q)s)",
                   "t.name ILIKE %(like)s", "t.display_name ILIKE %(like)s"]
        params["q"] = query
        params["like"] = f"%{_like_escape(query.strip())}%"
        if prefixes:
            clauses.append("t.search @@ to_tsquery('simple', %(prefix)s)")
            params["prefix"] = " & ".join(f"{w}:*" for w in prefixes)
        where.append("(" + " OR ".join(clauses) + ")")
    condition = " AND ".join(where)
    rows = fetch_all(compose("SELECT {columns}, count(*) OVER () AS total FROM {templates} WHERE {condition}"
                             " ORDER BY t.install_count DESC, t.name, r.name LIMIT %(limit)s OFFSET %(offset)s",
                             columns=_TEMPLATE_COLUMNS, templates=_TEMPLATES, condition=condition), params)
    if rows:
        return rows, int(rows[0]["total"])
    if not offset:
        return rows, 0
    counted = fetch_one(compose("SELECT count(*) AS n FROM {templates} WHERE {condition}",
                                templates=_TEMPLATES, condition=condition), params)
    return rows, int(counted["n"]) if counted else 0


def template(template_id: str) -> dict[str, Any] | None:
    """One catalog template with its repository's name and url."""
    return fetch_one(compose("SELECT {columns} FROM {templates} WHERE t.id = %s",
                             columns=_TEMPLATE_COLUMNS, templates=_TEMPLATES), (template_id,))


def count_install(conn: Conn, template_id: str) -> None:
    conn.execute("UPDATE catalog_templates SET install_count = install_count + 1 WHERE id = %s", (template_id,))
