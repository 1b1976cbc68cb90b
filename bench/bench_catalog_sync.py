"""Catalog sync of one repository holding 200 templates (a real git repository, file:// URL).

Figures: wall time and SQL statements (streamspace.db.statement_count) of
- the first sync (200 rows inserted),
- an unchanged re-sync (median of rounds; the upsert rewrites nothing),
- a re-sync after a commit that changes 10 templates and removes 5,
plus the split of one sync between the git fetch and parsing/validation.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.support import benchmark_database

TEMPLATES = 200
ROUNDS = 5
_GIT_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull}


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@example.com", *args], cwd=cwd, env=_GIT_ENV,
                   check=True, capture_output=True)


def _template(i: int, revision: int = 0) -> str:
    return (f"apiVersion: stream.space/v1alpha1\nkind: Template\nmetadata: {{name: app-{i:03d}}}\nspec:\n"
            f"  displayName: App {i} r{revision}\n  description: Benchmark application number {i}\n"
            f"  category: Category {i % 10}\n  tags: [bench, group-{i % 7}]\n"
            f"  baseImage: registry.example.com/apps/app-{i}:1.0\n"
            f"  defaultResources: {{requests: {{memory: 1Gi, cpu: 500m}}, limits: {{memory: 2Gi, cpu: '1'}}}}\n"
            f"  ports: [{{name: vnc, containerPort: 3000}}]\n  vnc: {{enabled: true, port: 3000}}\n"
            f"  env: [{{name: TZ, value: Etc/UTC}}, {{name: PUID, value: '1000'}}]\n")


def _timed_sync(repository_id: str) -> tuple[float, int, str]:
    from streamspace.catalog.sync import sync_repository
    from streamspace.db import statement_count

    before = statement_count()
    started = time.perf_counter()
    outcome = sync_repository(repository_id)
    elapsed = time.perf_counter() - started
    if outcome.status != "synced":
        raise RuntimeError(f"sync failed: {outcome}")
    return elapsed, statement_count() - before, outcome.status


def run() -> dict[str, Any]:
    from streamspace.catalog.git import fetch
    from streamspace.catalog.parse import parse_checkout
    from streamspace.catalog.urls import parse_repository_url
    from streamspace.config import reset_environment
    from streamspace.db import fetch_one

    benchmark_database()
    os.environ["CATALOG_ALLOW_FILE_URLS"] = "true"
    os.environ.setdefault("STREAMSPACE_SECRET_KEY", "3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    reset_environment()
    tmp = Path(tempfile.mkdtemp(prefix="ssb-catalog-"))
    repo = tmp / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    for i in range(TEMPLATES):
        (repo / f"templates/app-{i:03d}.yaml").parent.mkdir(exist_ok=True)
        (repo / f"templates/app-{i:03d}.yaml").write_text(_template(i))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "200 templates")
    url = "file://" + str(repo)
    row = fetch_one("INSERT INTO repositories (name, url, url_normalized, branch) VALUES ('bench', %s, %s, 'main')"
                    " RETURNING id::text AS id", (url, parse_repository_url(url, allow_file=True).normalized))
    assert row is not None
    repository_id = row["id"]

    first_seconds, first_statements, _ = _timed_sync(repository_id)
    unchanged = [_timed_sync(repository_id) for _ in range(ROUNDS)]

    for i in range(10):
        (repo / f"templates/app-{i:03d}.yaml").write_text(_template(i, revision=1))
    for i in range(195, 200):
        (repo / f"templates/app-{i:03d}.yaml").unlink()
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "change 10, remove 5")
    changed_seconds, changed_statements, _ = _timed_sync(repository_id)
    count = fetch_one("SELECT count(*) AS n FROM catalog_templates WHERE repository_id = %s", (repository_id,))
    assert count is not None and count["n"] == TEMPLATES - 5

    fetch_times, parse_times = [], []
    for round_ in range(ROUNDS):
        work = tmp / f"split-{round_}"
        work.mkdir()
        started = time.perf_counter()
        fetched = fetch(parse_repository_url(url, allow_file=True), "main", work, addresses=[], allow_file=True)
        fetch_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        result = parse_checkout(fetched.checkout)
        parse_times.append(time.perf_counter() - started)
        assert len(result.templates) == TEMPLATES - 5 and not result.errors

    return {
        "templates": TEMPLATES,
        "first_sync_seconds": round(first_seconds, 3),
        "first_sync_sql_statements": first_statements,
        "unchanged_resync_seconds_median": round(statistics.median(u[0] for u in unchanged), 3),
        "unchanged_resync_sql_statements": unchanged[0][1],
        "changed_resync_seconds": round(changed_seconds, 3),
        "changed_resync_sql_statements": changed_statements,
        "git_fetch_seconds_median": round(statistics.median(fetch_times), 3),
        "parse_and_validate_seconds_median": round(statistics.median(parse_times), 3),
    }
