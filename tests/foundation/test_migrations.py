"""Migrations: forward-only, idempotent, and safe when two processes run them at once."""

from __future__ import annotations

import subprocess
import sys

from streamspace.db import connect
from streamspace.db.migrate import available_migrations, current_version, migrate

EXPECTED_TABLES = {
    "users", "groups", "group_members", "user_quotas", "group_quotas", "token_families", "refresh_tokens",
    "login_attempts", "sessions", "connections", "repositories", "catalog_templates", "configuration",
    "audit_log", "schema_migrations",
}


def _tables(url: str) -> set[str]:
    with connect(url) as conn:
        return {r["tablename"] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def test_migrations_create_the_initial_schema_with_seeded_configuration(empty_db_url: str) -> None:
    applied = migrate(empty_db_url)
    assert applied == [m.version for m in available_migrations()]
    assert EXPECTED_TABLES <= _tables(empty_db_url)
    with connect(empty_db_url) as conn:
        keys = {r["key"] for r in conn.execute("SELECT key FROM configuration")}
    assert {"ingress.domain", "session.defaultIdleTimeout", "session.enableAutoHibernation"} <= keys


def test_migrating_twice_applies_nothing_the_second_time(empty_db_url: str) -> None:
    first = migrate(empty_db_url)
    assert first
    assert migrate(empty_db_url) == []
    assert current_version(empty_db_url) == max(first)


def test_two_processes_migrating_at_once_apply_each_version_exactly_once(empty_db_url: str) -> None:
    script = "import sys; from streamspace.db.migrate import migrate; print(migrate(sys.argv[1]))"
    procs = [subprocess.Popen([sys.executable, "-c", script, empty_db_url], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    applied = sorted(out.strip() for out, _ in outputs)
    everything = str([m.version for m in available_migrations()])
    assert applied == sorted(["[]", everything]), applied  # one did the work, the other found it done
    with connect(empty_db_url) as conn:
        rows = conn.execute("SELECT version, count(*) AS n FROM schema_migrations GROUP BY version").fetchall()
    assert rows and all(row["n"] == 1 for row in rows)


def test_migration_versions_are_unique_and_ordered() -> None:
    versions = [m.version for m in available_migrations()]
    assert versions == sorted(set(versions))
    assert versions[0] == 1
