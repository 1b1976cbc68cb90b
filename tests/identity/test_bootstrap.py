"""First start: with no users, an admin is created from ADMIN_PASSWORD, or with a generated
password announced exactly once; never an empty password; a second call does nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def empty_users(db_url: str) -> Iterator[None]:
    from streamspace.db import execute

    execute("DELETE FROM users")
    yield
    execute("DELETE FROM users")


@pytest.fixture
def admin_password_env() -> Iterator:
    """Set ADMIN_PASSWORD for one test (None: unset), restoring it and the settings afterwards."""
    from streamspace.config import reset_environment

    saved = os.environ.get("ADMIN_PASSWORD")

    def set_to(value: str | None) -> None:
        if value is None:
            os.environ.pop("ADMIN_PASSWORD", None)
        else:
            os.environ["ADMIN_PASSWORD"] = value
        reset_environment()

    yield set_to
    set_to(saved)


def _admin_hash() -> list[dict]:
    from streamspace.db import fetch_all

    return fetch_all("SELECT username, role, active, password_hash FROM users")


def test_admin_from_admin_password_and_second_call_is_a_no_op(empty_users: None, admin_password_env) -> None:
    from streamspace.auth.bootstrap import bootstrap_admin
    from streamspace.auth.passwords import verify_password

    admin_password_env("configured-admin-password")
    said: list[str] = []
    assert bootstrap_admin(announce=said.append) is True
    assert len(said) == 1 and "configured-admin-password" not in said[0]
    rows = _admin_hash()
    assert len(rows) == 1 and rows[0]["role"] == "admin" and rows[0]["active"]
    assert verify_password(rows[0]["password_hash"], "configured-admin-password")[0]
    assert bootstrap_admin(announce=said.append) is False
    assert len(said) == 1 and len(_admin_hash()) == 1


@pytest.mark.parametrize("configured", [None, ""])
def test_generated_password_is_announced_once_and_never_empty(empty_users: None, admin_password_env,
                                                              configured: str | None) -> None:
    from streamspace.auth.bootstrap import bootstrap_admin
    from streamspace.auth.passwords import verify_password

    admin_password_env(configured)
    said: list[str] = []
    assert bootstrap_admin(announce=said.append) is True
    assert len(said) == 1 and "shown once" in said[0]
    password = said[0].split("password=")[1].split()[0]
    assert len(password) >= 16
    [row] = _admin_hash()
    assert row["password_hash"] and verify_password(row["password_hash"], password)[0]
    assert not verify_password(row["password_hash"], "")[0]
    assert bootstrap_admin(announce=said.append) is False and len(said) == 1


def test_concurrent_bootstraps_create_exactly_one_admin(empty_users: None, admin_password_env) -> None:
    from streamspace.auth.bootstrap import bootstrap_admin

    admin_password_env("configured-admin-password")
    with ThreadPoolExecutor(max_workers=4) as pool:
        created = list(pool.map(lambda _: bootstrap_admin(announce=lambda _: None), range(4)))
    assert created.count(True) == 1 and len(_admin_hash()) == 1


def test_bootstrap_command_and_migrate_bootstrap(empty_users: None, db_url: str, tmp_path: Path) -> None:
    """`python -m streamspace bootstrap` and the migration Job's `migrate --bootstrap`."""
    env = {**os.environ, "DATABASE_URL": db_url, "STREAMSPACE_DATA_DIR": str(tmp_path)}
    env.pop("ADMIN_PASSWORD", None)
    first = subprocess.run([sys.executable, "-m", "streamspace", "bootstrap"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("password=") == 1
    again = subprocess.run([sys.executable, "-m", "streamspace", "migrate", "--bootstrap"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "password" not in again.stdout and "migrations applied: none" in again.stdout
    from streamspace.db import execute

    execute("DELETE FROM users")
    job = subprocess.run([sys.executable, "-m", "streamspace", "migrate", "--bootstrap"], cwd=ROOT,
                         env={**env, "ADMIN_PASSWORD": "job-admin-password"}, capture_output=True, text=True,
                         timeout=120)
    assert job.returncode == 0 and "Bootstrap admin created" in job.stdout and "job-admin-password" not in job.stdout
    assert len(_admin_hash()) == 1
