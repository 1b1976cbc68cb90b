"""Attack on availability: with the database unreachable, every request held a worker for ~10 s."""

from __future__ import annotations

import requests

from streamspace.local.server import unused_port


def test_with_the_database_down_requests_answer_503_with_retry_after_from_a_short_pool_wait(serve, setting):
    from streamspace.config import environment
    from streamspace.db import close_pool, pool

    base = serve("auth")
    setting(DATABASE_URL=f"postgresql://nobody@127.0.0.1:{unused_port()}/gone")
    close_pool()
    try:
        assert environment().db_pool_timeout_seconds == 2
        assert pool().timeout == 2  # how long a request waits for a connection before its 503
        answer = requests.post(base + "/api/v1/auth/login", json={"username": "someone", "password": "something"},
                               timeout=30)
        assert answer.status_code == 503
        assert int(answer.headers["Retry-After"]) >= 1
        assert answer.json()["error"] == "database unavailable"
    finally:
        close_pool()
