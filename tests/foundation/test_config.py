"""Configuration: typed, read once, and a bad value is one line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamspace.config import ConfigError, load_environment

ROOT = Path(__file__).resolve().parents[2]
BASE = {"JWT_SECRET": "s" * 40, "STREAMSPACE_DATA_DIR": "/tmp/streamspace-config-test"}


def test_defaults_follow_the_deployment_guide() -> None:
    cfg = load_environment(BASE)
    assert cfg.api_port == 8000
    assert cfg.sync_interval_seconds == 3600
    assert cfg.namespace == "streamspace"
    assert cfg.database_url is None  # embedded default


def test_the_connection_pool_has_one_connection_per_serving_thread_unless_told_otherwise() -> None:
    assert load_environment({**BASE, "THREADS": "8"}).db_pool_size == 8  # the images' gunicorn threads
    assert load_environment({**BASE, "THREADS": "500"}).db_pool_size == 50
    assert load_environment(BASE).db_pool_size == 4
    assert load_environment({**BASE, "THREADS": "8", "DB_POOL_SIZE": "3"}).db_pool_size == 3


def test_db_settings_build_a_database_url_with_escaped_credentials() -> None:
    cfg = load_environment({**BASE, "DB_HOST": "postgres", "DB_PORT": "5433", "DB_USER": "stream space",
                         "DB_PASSWORD": "p@ss:/word", "DB_NAME": "streamspace"})
    assert cfg.database_url == "postgresql://stream%20space:p%40ss%3A%2Fword@postgres:5433/streamspace?sslmode=prefer"


def test_database_url_wins_when_given() -> None:
    cfg = load_environment({**BASE, "DATABASE_URL": "postgresql://u:p@db:5432/x", "DB_HOST": "ignored"})
    assert cfg.database_url == "postgresql://u:p@db:5432/x"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DB_HOST": "h", "DB_PORT": "abc"}, "DB_PORT"),
        ({"DB_HOST": "h", "DB_PORT": "70000"}, "DB_PORT"),
        ({"API_PORT": "0"}, "API_PORT"),
        ({"SYNC_INTERVAL": "often"}, "SYNC_INTERVAL"),
        ({"SYNC_INTERVAL": "1d"}, "SYNC_INTERVAL"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"STREAMSPACE_ENV": "prod"}, "STREAMSPACE_ENV"),
        ({"STREAMSPACE_ENV": "production", "JWT_SECRET": "short", "DATABASE_URL": "postgresql://a@b/c"}, "JWT_SECRET"),
        ({"CORS_ALLOWED_ORIGINS": "*"}, "CORS_ALLOWED_ORIGINS"),
        ({"STREAMSPACE_CLUSTER": "minikube"}, "STREAMSPACE_CLUSTER"),
        ({"CATALOG_ALLOW_FILE_URLS": "maybe"}, "CATALOG_ALLOW_FILE_URLS"),
        ({"STREAMSPACE_NAMESPACE": "Not A Label"}, "STREAMSPACE_NAMESPACE"),
        ({"SESSIONS_NAMESPACE": "Sessions_NS"}, "SESSIONS_NAMESPACE"),
        ({"SIM_IMAGE_PULL_SECONDS": "slow"}, "SIM_IMAGE_PULL_SECONDS"),
        ({"SIM_IMAGE_PULL_SECONDS": "nan"}, "SIM_IMAGE_PULL_SECONDS"),
        ({"SIM_START_SECONDS": "-1"}, "SIM_START_SECONDS"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_environment({**BASE, **env})
    assert str(caught.value).startswith(variable + ":")


def test_the_simulated_kubelet_times_are_seconds_with_fractions() -> None:
    cfg = load_environment({**BASE, "SIM_IMAGE_PULL_SECONDS": "8", "SIM_START_SECONDS": "0.5"})
    assert (cfg.sim_image_pull_seconds, cfg.sim_start_seconds) == (8.0, 0.5)
    assert (load_environment(BASE).sim_image_pull_seconds, load_environment(BASE).sim_start_seconds) == (0.0, 0.0)


def test_sync_interval_accepts_go_durations() -> None:
    assert load_environment({**BASE, "SYNC_INTERVAL": "30m"}).sync_interval_seconds == 1800
    assert load_environment({**BASE, "SYNC_INTERVAL": "90s"}).sync_interval_seconds == 90
    assert load_environment({**BASE, "SYNC_INTERVAL": "1h30m"}).sync_interval_seconds == 5400


def test_development_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    env = {"STREAMSPACE_DATA_DIR": str(tmp_path)}
    first = load_environment(env).jwt_keys
    second = load_environment(env).jwt_keys
    assert first == second and len(first["k1"]) >= 32
    assert oct((tmp_path / "jwt-secret").stat().st_mode & 0o777) == "0o600"


def test_a_function_with_a_bad_setting_stops_at_start_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env.update({"DB_HOST": "localhost", "DB_PORT": "not-a-port", "STREAMSPACE_DATA_DIR": str(tmp_path)})
    result = subprocess.run(
        [sys.executable, str(ROOT / "functions" / "metrics" / "main.py"), "--port", "0"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["streamspace: configuration error: DB_PORT: expected an integer from 1 to 65535, got 'not-a-port'"]
