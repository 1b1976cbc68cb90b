"""Shared benchmark plumbing: an embedded database and a bare functions-framework baseline."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HELLO_WORLD = '''
import functions_framework


@functions_framework.http
def handle(request):
    return "Hello, World!"
'''


def hello_world_source(directory: Path) -> Path:
    path = directory / "hello.py"
    path.write_text(HELLO_WORLD)
    return path


def benchmark_database() -> str:
    """A fresh, migrated database on an embedded server, made this process's database."""
    from streamspace.config import reset_environment
    from streamspace.db import close_pool
    from streamspace.db.embedded import ensure_database, start_embedded
    from streamspace.db.migrate import migrate

    data = Path(tempfile.mkdtemp(prefix="ssb-", dir="/tmp"))
    url = ensure_database(start_embedded(data, cleanup_mode="delete"), "bench")
    migrate(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("JWT_SECRET", "bench-secret-" + "x" * 40)
    os.environ["STREAMSPACE_DATA_DIR"] = str(data)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # The benchmarks play the ingress: their X-Forwarded-For (one address per simulated client) is believed.
    os.environ.setdefault("TRUSTED_PROXIES", "127.0.0.1/32,::1/128")
    close_pool()
    reset_environment()
    return url


def bench_user_and_session(session: str = "bench-firefox-1") -> str:
    """A user `bench` owning one session index row (no cluster object); returns the user's id."""
    from streamspace.config import environment
    from streamspace.db import execute, fetch_one

    user = fetch_one("INSERT INTO users (username, email, role, password_hash) VALUES ('bench', 'b@example.com',"
                     " 'user', 'x') RETURNING id::text AS id")
    assert user is not None
    execute("INSERT INTO sessions (namespace, name, user_id, username, template)"
            " VALUES (%s, %s, %s, 'bench', 'firefox')", (environment().sessions_namespace, session, user["id"]))
    return str(user["id"])


def median_of(samples: list[float]) -> float:
    return statistics.median(samples)


def requests_per_second(call: Callable[[], object], seconds: float = 2.0, warmup: int = 50) -> float:
    for _ in range(warmup):
        call()
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        call()
        count += 1
    return count / (time.perf_counter() - started)


def timed_us(call: Callable[[], object], n: int, warmup: int = 0) -> list[float]:
    """Microseconds of each of `n` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def login_token(user_id: str, username: str, role: str = "user") -> str:
    """An access token of a new login family for `user_id` (every access token carries one)."""
    from streamspace.auth.families import start_family
    from streamspace.auth.tokens import issue_access_token
    from streamspace.db import transaction

    with transaction() as conn:
        family_id, _ = start_family(conn, user_id)
    return issue_access_token(user_id=user_id, username=username, role=role, groups=[], family_id=family_id)[0]


def desktop_cookie(user_id: str, username: str, session: str) -> str:
    """The session host's cookie of `user_id` for `session` (a new login, a ticket redeemed), as a
    browser holds it after following connect's openUrl."""
    from streamspace.auth.families import start_family
    from streamspace.auth.principal import Principal
    from streamspace.config import environment
    from streamspace.db import transaction
    from streamspace.desktop.access import issue_ticket, redeem

    with transaction() as conn:
        family_id, _ = start_family(conn, user_id)
        ticket = issue_ticket(conn, Principal(user_id, username, "user", (), family_id),
                              environment().sessions_namespace, session)
    return redeem(ticket, session, "streamspace.local")[0]
