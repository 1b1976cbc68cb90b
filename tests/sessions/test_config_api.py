"""The config function: the configuration table through GET/PATCH /api/v1/config (admin only)."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import World


def test_read_defaults(world: World) -> None:
    from streamspace.db import execute

    execute("DELETE FROM configuration")  # what other tests of this module set: back to the defaults
    response = world.admin.get("/api/v1/config")
    assert response.status_code == 200
    config = response.json()["config"]
    assert config["ingress.domain"] == "streamspace.local"
    assert config["session.enableAutoHibernation"] is True
    assert config["resources.defaultCPU"] == "1000m"
    assert set(config) >= {"ingress.class", "storage.className", "storage.defaultSize", "session.defaultIdleTimeout",
                           "session.defaultMaxDuration", "resources.defaultMemory"}


def test_admin_only(world: World) -> None:
    assert world.alice.get("/api/v1/config").status_code == 403
    assert world.alice.patch("/api/v1/config", json={"ingress.domain": "evil.example"}).status_code == 403
    assert world.anonymous.get("/api/v1/config").status_code == 401


def test_patch_stores_canonical_values_and_audits_each_change(world: World) -> None:
    from streamspace.db import fetch_all, fetch_one
    from streamspace.settings.service import platform_settings

    earlier = fetch_one("SELECT coalesce(max(id), 0) AS id FROM audit_log")  # other tests' changes
    response = world.admin.patch("/api/v1/config", json={
        "ingress.domain": "apps.example.com", "session.defaultIdleTimeout": "90m",
        "session.enableAutoHibernation": "false", "resources.defaultCPU": 2, "storage.className": "",
    })
    assert response.status_code == 200, response.text
    config = response.json()["config"]
    assert config["ingress.domain"] == "apps.example.com"
    assert config["session.defaultIdleTimeout"] == "1h30m"
    assert config["session.enableAutoHibernation"] is False
    assert config["resources.defaultCPU"] == "2"
    assert platform_settings() == config
    audit = fetch_all("SELECT actor, target, details FROM audit_log WHERE action = 'config.update' AND id > %s"
                      " ORDER BY id", (earlier["id"],))
    # storage.className was already "": unchanged keys leave no audit row
    assert [row["target"] for row in audit] == ["ingress.domain", "session.defaultIdleTimeout",
                                                "session.enableAutoHibernation", "resources.defaultCPU"]
    assert audit[0]["actor"] == "root"
    assert audit[0]["details"] == {"old": "streamspace.local", "new": "apps.example.com"}


@pytest.mark.parametrize(("body", "error"), [
    ({"ingress.domain": "Not A Domain"}, "invalid ingress.domain"),
    ({"ingress.class": ""}, "invalid ingress.class"),
    ({"storage.className": "UPPER"}, "invalid storage.className"),
    ({"storage.defaultSize": "big"}, "invalid storage.defaultSize"),
    ({"session.defaultIdleTimeout": "forever"}, "invalid session.defaultIdleTimeout"),
    ({"session.defaultMaxDuration": 5}, "invalid session.defaultMaxDuration"),
    ({"session.enableAutoHibernation": "maybe"}, "invalid session.enableAutoHibernation"),
    ({"resources.defaultMemory": "1m"}, "invalid resources.defaultMemory"),
    ({"resources.defaultCPU": "-2"}, "invalid resources.defaultCPU"),
    ({"no.such.key": "x"}, "invalid no.such.key"),
    ({}, "invalid body"),
])
def test_patch_refuses_bad_values(world: World, body: dict, error: str) -> None:
    response = world.admin.patch("/api/v1/config", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error


def test_patch_is_all_or_nothing(world: World) -> None:
    before = world.admin.get("/api/v1/config").json()["config"]
    response = world.admin.patch("/api/v1/config", json={"ingress.domain": "apps.example.org",
                                                         "storage.defaultSize": "lots"})
    assert response.status_code == 400 and response.json()["error"] == "invalid storage.defaultSize"
    assert world.admin.get("/api/v1/config").json()["config"] == before


@pytest.mark.parametrize("name", ["nginx", "haproxy"])
def test_an_ingress_class_the_controller_does_not_serve_is_refused_naming_the_accepted_ones(
        world: World, name: str) -> None:
    """The session reconciler would refuse it (no forward-auth there: IngressClassUnsupported); the
    API says so at once, and stores nothing."""
    before = world.admin.get("/api/v1/config").json()["config"]
    response = world.admin.patch("/api/v1/config", json={"ingress.class": name, "storage.defaultSize": "20Gi"})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "unsupported ingress.class"
    message = response.json()["message"]
    assert f"{name!r} is not served by the traefik ingress controller" in message
    assert "accepted: traefik" in message and "INGRESS_AUTH_CLASSES" in message
    assert world.admin.get("/api/v1/config").json()["config"] == before


def test_an_ingress_class_listed_for_the_controller_is_accepted(world: World, setting: Any) -> None:
    setting(INGRESS_AUTH_CLASSES="traefik-internal")
    response = world.admin.patch("/api/v1/config", json={"ingress.class": "traefik-internal"})
    assert response.status_code == 200, response.text
    assert world.admin.get("/api/v1/config").json()["config"]["ingress.class"] == "traefik-internal"
    assert world.admin.patch("/api/v1/config", json={"ingress.class": "traefik"}).status_code == 200

