"""Versioned, forward-only SQL migrations.

Files `migrations/NNNN_name.sql` are applied in order, each in its own transaction, under a
Postgres advisory lock, so two processes migrating at once serialise instead of racing; an
applied version is never applied again. Cold-starting functions never migrate: only
`python -m streamspace migrate`, the migration Job and the local runner do.
"""

from __future__ import annotations

import logging
import re
from importlib import resources

from streamspace.db import connect
from streamspace.records import record

log = logging.getLogger("streamspace.db")

# Arbitrary but fixed: every StreamSpace migrator contends for this one advisory lock.
MIGRATION_LOCK_ID = 0x5354524D  # "STRM"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@record
class Migration:
    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("streamspace.db").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return found


def migrate(url: str) -> list[int]:
    """Apply every pending migration; returns the versions applied by this call."""
    applied_now: list[int] = []
    with connect(url) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row["version"] for row in conn.execute("SELECT version FROM schema_migrations")}
            for migration in available_migrations():
                if migration.version in done:
                    continue
                with conn.transaction():
                    conn.execute(migration.sql)  # no parameters: a script of statements, sent as it is
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
                log.info("migration applied", extra={"version": migration.version, "migration": migration.name})
                applied_now.append(migration.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
    return applied_now


def current_version(url: str) -> int:
    import psycopg2.errors

    with connect(url) as conn:
        try:
            row = conn.execute("SELECT max(version) AS version FROM schema_migrations").fetchone()
        except psycopg2.errors.UndefinedTable:
            return 0
        return int(row["version"] or 0) if row else 0
