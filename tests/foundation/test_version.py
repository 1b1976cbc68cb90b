"""Build identity: the documented defaults, and /version reporting the build values.
(Every entry point's --version line: tests/shipping/test_dockerfile.py.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests

BUILD = {"VERSION": "v0.2.0", "COMMIT": "abc1234", "BUILD_DATE": "2025-11-14T00:00:00Z"}


def test_defaults_without_build_arguments() -> None:
    env = {k: v for k, v in os.environ.items() if k not in BUILD}
    result = subprocess.run([sys.executable, "-m", "streamspace", "version"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.strip() == "StreamSpace API dev (commit: unknown, built: )"


def test_version_route_reports_the_build(serve, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in BUILD.items():
        monkeypatch.setenv(key, value)
    base = serve("metrics")
    for path in ("/version", "/api/v1/version"):
        assert requests.get(base + path, timeout=10).json() == {
            "version": "v0.2.0", "commit": "abc1234", "buildDate": "2025-11-14T00:00:00Z", "api": "v1"}
    # A process reports the build it started as (looked up once, not on every request).
    monkeypatch.setenv("VERSION", "v9.9.9")
    assert requests.get(base + "/api/v1/version", timeout=10).json()["version"] == "v0.2.0"
