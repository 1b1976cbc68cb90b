"""The OIDC_* settings: all or nothing, and a bad value is one line naming the setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streamspace.config import ConfigError, load_environment

ROOT = Path(__file__).resolve().parents[2]
BASE = {"JWT_SECRET": "s" * 40, "STREAMSPACE_DATA_DIR": "/tmp/streamspace-config-test"}
GOOD = {"OIDC_ISSUER": "https://login.example.com/realms/main/", "OIDC_CLIENT_ID": "streamspace",
        "OIDC_CLIENT_SECRET": "s3cret",
        "OIDC_REDIRECT_URIS": "https://streamspace.example.com/api/v1/auth/oidc/callback"}


def test_no_issuer_means_no_single_sign_on() -> None:
    assert load_environment(BASE).oidc is None


def test_a_complete_group_is_read_with_defaults() -> None:
    cfg = load_environment({**BASE, **GOOD}).oidc
    assert cfg is not None
    assert cfg.issuer == "https://login.example.com/realms/main"  # trailing slash dropped, as discovery expects
    assert cfg.scopes == ("openid", "profile", "email") and cfg.token_auth_method == "client_secret_basic"
    assert cfg.username_claim == "preferred_username" and cfg.groups_claim == "groups"
    assert cfg.break_glass_admin == "admin" and not cfg.disable_password_login
    assert "s3cret" not in repr(cfg)


def test_private_key_jwt_reads_the_key_file(tmp_path: Path) -> None:
    key = tmp_path / "client.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nMII...\n-----END PRIVATE KEY-----\n")
    env = {**BASE, **GOOD, "OIDC_CLIENT_SECRET": "", "OIDC_CLIENT_PRIVATE_KEY_FILE": str(key)}
    cfg = load_environment(env).oidc
    assert cfg is not None and cfg.token_auth_method == "private_key_jwt" and cfg.client_secret is None


@pytest.mark.parametrize(("change", "variable"), [
    ({"OIDC_CLIENT_ID": ""}, "OIDC_CLIENT_ID"),
    ({"OIDC_CLIENT_SECRET": ""}, "OIDC_CLIENT_SECRET"),
    ({"OIDC_CLIENT_PRIVATE_KEY_FILE": "/nonexistent/key.pem"}, "OIDC_CLIENT_SECRET"),
    ({"OIDC_ISSUER": "login.example.com"}, "OIDC_ISSUER"),
    ({"OIDC_SCOPES": "profile email"}, "OIDC_SCOPES"),
    ({"OIDC_REDIRECT_URIS": ""}, "OIDC_REDIRECT_URIS"),
    ({"OIDC_REDIRECT_URIS": "https://streamspace.example.com/elsewhere"}, "OIDC_REDIRECT_URIS"),
    ({"OIDC_REDIRECT_URIS": "javascript:alert(1)"}, "OIDC_REDIRECT_URIS"),
    ({"OIDC_TOKEN_AUTH_METHOD": "private_key_jwt"}, "OIDC_TOKEN_AUTH_METHOD"),
    ({"OIDC_TOKEN_AUTH_METHOD": "magic"}, "OIDC_TOKEN_AUTH_METHOD"),
    ({"OIDC_USERNAME_CLAIM": "a b"}, "OIDC_USERNAME_CLAIM"),
    ({"OIDC_POST_LOGOUT_REDIRECT_URI": "nope"}, "OIDC_POST_LOGOUT_REDIRECT_URI"),
    ({"OIDC_DISABLE_PASSWORD_LOGIN": "maybe"}, "OIDC_DISABLE_PASSWORD_LOGIN"),
])
def test_a_bad_setting_is_named(change: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as failure:
        load_environment({**BASE, **GOOD, **change})
    assert str(failure.value).startswith(variable + ":")


def test_settings_without_an_issuer_are_refused() -> None:
    with pytest.raises(ConfigError, match="^OIDC_ISSUER: required when OIDC_CLIENT_ID is set"):
        load_environment({**BASE, "OIDC_CLIENT_ID": "x"})


def test_production_wants_https() -> None:
    prod = {**BASE, "STREAMSPACE_ENV": "production", "JWT_SECRET": "p" * 40, "DATABASE_URL": "postgresql://x/y",
            "STREAMSPACE_SECRET_KEY": "k"}
    with pytest.raises(ConfigError, match="^OIDC_ISSUER: expected an https:// URL"):
        load_environment({**prod, **GOOD, "OIDC_ISSUER": "http://login.example.com"})
    with pytest.raises(ConfigError, match="^OIDC_REDIRECT_URIS: expected an https:// URL"):
        load_environment({**prod, **GOOD, "OIDC_REDIRECT_URIS": "http://streamspace.example.com/api/v1/auth/oidc/callback"})


def test_the_auth_function_stops_at_start_with_one_line() -> None:
    env = {"PATH": "/usr/bin:/bin", **BASE, **GOOD, "OIDC_SCOPES": "email"}
    result = subprocess.run([sys.executable, str(ROOT / "functions" / "auth" / "main.py"), "--version"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == \
        "streamspace: configuration error: OIDC_SCOPES: must include openid, got 'email'"
