"""`streamspace migrate` (the migration Job of every install and upgrade) stores the install's
INGRESS_CLASS and INGRESS_DOMAIN (Helm values, the ConfigMap) as the settings ingress.class and
ingress.domain, unless an admin has changed the setting through the API since.

Each test migrates a database of its own: what other tests changed in theirs cannot decide the outcome."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from streamspace.__main__ import main
from streamspace.auth.principal import Principal
from streamspace.config import ConfigError, load_environment
from streamspace.db import close_pool, fetch_one
from streamspace.settings.service import platform_settings, update_platform_settings
from tests.conftest import make_user


@pytest.fixture
def install(empty_db_url: str, setting: Callable[..., None]) -> Iterator[Callable[..., None]]:
    """This test's own empty database as the process's; `install(INGRESS_CLASS=...)` sets the install's values."""
    close_pool()
    setting(DATABASE_URL=empty_db_url, INGRESS_CLASS=None, INGRESS_DOMAIN=None, INGRESS_AUTH_CLASSES=None)
    yield setting
    close_pool()


def _ingress() -> tuple[Any, Any]:
    values = platform_settings()
    return values["ingress.class"], values["ingress.domain"]


def _admin() -> Principal:
    return Principal(make_user("root", role="admin"), "root", "admin", (), None)


def test_migrate_stores_the_installs_ingress_class_and_domain(install: Callable[..., None], capsys: Any) -> None:
    install(INGRESS_AUTH_CLASSES="traefik-internal", INGRESS_CLASS="traefik-internal",
            INGRESS_DOMAIN="desktops.example.org")
    assert main(["migrate"]) == 0
    assert "install settings stored: ingress.class, ingress.domain" in capsys.readouterr().out
    assert _ingress() == ("traefik-internal", "desktops.example.org")
    stored = fetch_one("SELECT updated_by FROM configuration WHERE key = 'ingress.class'")
    assert stored is not None and stored["updated_by"] == "env:INGRESS_CLASS"

    install(INGRESS_DOMAIN="upgraded.example.org")  # an upgrade with a new value replaces the install's own
    assert main(["migrate"]) == 0
    assert "install settings stored: ingress.domain" in capsys.readouterr().out
    assert _ingress() == ("traefik-internal", "upgraded.example.org")


def test_migrate_keeps_a_setting_an_admin_changed_and_stores_the_other(install: Callable[..., None]) -> None:
    install(INGRESS_AUTH_CLASSES="traefik-internal")
    assert main(["migrate"]) == 0
    update_platform_settings({"ingress.class": "traefik-internal"}, _admin())
    install(INGRESS_CLASS="traefik", INGRESS_DOMAIN="desktops.example.org")
    assert main(["migrate"]) == 0
    assert _ingress() == ("traefik-internal", "desktops.example.org")


def test_migrate_without_the_variables_keeps_the_seeded_settings(install: Callable[..., None], capsys: Any) -> None:
    assert main(["migrate"]) == 0
    assert "install settings stored" not in capsys.readouterr().out
    assert _ingress() == ("traefik", "streamspace.local")


def test_an_ingress_class_the_controller_does_not_serve_is_a_start_up_error(install: Callable[..., None]) -> None:
    install(INGRESS_CLASS="haproxy")
    with pytest.raises(ConfigError, match=r"^INGRESS_CLASS: 'haproxy' is not served by the traefik ingress"
                                          r" controller \(INGRESS_CONTROLLER\); expected one of: traefik"):
        load_environment()
