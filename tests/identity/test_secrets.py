"""JWT_SECRET rules: required (>= 32 bytes) in production, generated and kept in the data folder in
development; a function started without it in production stops with one line naming it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from streamspace.config import ConfigError, load_environment

ROOT = Path(__file__).resolve().parents[2]
PROD = {"STREAMSPACE_ENV": "production", "DATABASE_URL": "postgresql://u:p@127.0.0.1:1/streamspace",
        "STREAMSPACE_SECRET_KEY": "3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}


def test_production_requires_a_long_jwt_secret(tmp_path: Path) -> None:
    for env in ({**PROD}, {**PROD, "JWT_SECRET": ""}, {**PROD, "JWT_SECRET": "too-short-31-bytes-xxxxxxxxxxxx"}):
        with pytest.raises(ConfigError, match=r"^JWT_SECRET: "):
            load_environment({**env, "STREAMSPACE_DATA_DIR": str(tmp_path)})
    cfg = load_environment({**PROD, "JWT_SECRET": "x" * 32, "STREAMSPACE_DATA_DIR": str(tmp_path)})
    assert cfg.jwt_keys == {"k1": "x" * 32}
    assert not (tmp_path / "jwt-secret").exists()  # production never generates one


def test_production_previous_secrets_must_be_long_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^JWT_PREVIOUS_SECRETS: "):
        load_environment({**PROD, "JWT_SECRET": "x" * 32, "JWT_PREVIOUS_SECRETS": "old:short",
                       "STREAMSPACE_DATA_DIR": str(tmp_path)})


def test_development_generates_a_private_secret_once_and_keeps_it(tmp_path: Path) -> None:
    first = load_environment({"STREAMSPACE_DATA_DIR": str(tmp_path)})
    second = load_environment({"STREAMSPACE_DATA_DIR": str(tmp_path)})
    secret_file = tmp_path / "jwt-secret"
    assert first.jwt_keys == second.jwt_keys == {"k1": secret_file.read_text().strip()}
    assert len(secret_file.read_text().strip()) >= 32
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600


def _start(args: list[str], env_overrides: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("JWT_SECRET", "JWT_PREVIOUS_SECRETS", "DATABASE_URL",
                                                            "PASSWORD_HASH_PROFILE")}
    env.update({**PROD, "STREAMSPACE_DATA_DIR": str(tmp_path), **env_overrides})
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_function_started_in_production_without_secret_exits_with_one_line(tmp_path: Path) -> None:
    ff = str(Path(sys.executable).with_name("functions-framework"))
    for args in ([sys.executable, "functions/auth/main.py", "--port", "0"],
                 [ff, "--source", "functions/auth/main.py", "--target", "handle", "--port", "0"],
                 [sys.executable, "functions/users/main.py", "--port", "0"]):
        done = _start(args, {}, tmp_path)
        assert done.returncode != 0, args
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "JWT_SECRET" in lines[0] and "Traceback" not in done.stderr


@pytest.mark.slow
def test_the_weak_test_hash_profile_is_refused_in_production(tmp_path: Path) -> None:
    done = _start([sys.executable, "functions/auth/main.py", "--port", "0"],
                  {"JWT_SECRET": "y" * 40, "PASSWORD_HASH_PROFILE": "test"}, tmp_path)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "PASSWORD_HASH_PROFILE" in lines[0], done.stderr
