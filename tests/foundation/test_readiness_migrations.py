"""Readiness waits for the migrations: a function against a database whose schema is older than its
build answers /health 503 (Knative sends it no traffic) until the migrations have run (issue 19)."""

from __future__ import annotations

import requests

from streamspace.db.migrate import migrate
from tests.conftest import use_database


def test_health_is_unready_until_the_migrations_ran(empty_db_url: str) -> None:
    from streamspace.local.gateway import load_function_app
    from streamspace.local.server import BackgroundServer

    use_database(empty_db_url)
    server = BackgroundServer(load_function_app("config")).start()
    try:
        before = requests.get(server.url + "/health", timeout=30)
        assert before.status_code == 503
        assert before.json()["error"] == "migrations pending"
        migrate(empty_db_url)
        after = requests.get(server.url + "/health", timeout=30)
        assert after.status_code == 200, after.text
    finally:
        server.stop()
