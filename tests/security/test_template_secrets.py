"""Attacks through a Template (from the catalog, i.e. from someone else's git repository) on what a
desktop may see, and on the login standing a stolen signing key would skip."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
import requests

from streamspace import kube
from streamspace.reconcile.desired import desired_objects
from streamspace.settings.effective import ReconcileConfig
from streamspace.settings.service import update_platform_settings
from tests.conftest import make_user
from tests.reconcile.conftest import function_url  # noqa: F401 - the fixture
from tests.reconcile.reconcile_helpers import add_template, live, template_manifest


@pytest.fixture(scope="module")
def template_url(function_url):  # noqa: F811
    return function_url("template-reconcile")


def reconciled_phase(url: str, name: str, env: list) -> tuple[str, str]:
    existing = kube.get("Template", name, "streamspace")
    if existing is not None:
        kube.delete("Template", name, "streamspace")
    add_template(url, name, env=env)
    status = live("Template", name)["status"]
    return status["phase"], status["message"]


def test_a_catalog_template_cannot_put_the_platforms_jwt_secret_into_desktops(template_url):
    steal = [{"name": "STOLEN", "valueFrom": {"secretKeyRef": {"name": "streamspace-secrets", "key": "JWT_SECRET"}}}]
    phase, message = reconciled_phase(template_url, "thief", steal)
    assert phase == "Invalid"
    assert "streamspace-secrets" in message or "platform" in message
    # Unknown keys next to a source, two sources at once, and unsafe pod fields are refused too.
    for env in (
        [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "app-key", "key": "k"}, "x": {}}}],
        [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "app-key", "key": "k"},
                                     "configMapKeyRef": {"name": "app", "key": "k"}}}],
        [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "app-key", "key": "k", "namespace": "kube-system"}}}],
        [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}}],
        [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}],
    ):
        assert reconciled_phase(template_url, "thief", env)[0] == "Invalid", env


def test_a_template_reads_only_secrets_an_admin_marked_for_templates(template_url):
    wants = [{"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "app-key", "key": "token"}}},
             {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    phase, message = reconciled_phase(template_url, "marked", wants)
    assert phase == "Invalid" and "templates.envSecrets" in message
    update_platform_settings({"templates.envSecrets": ["app-key"]}, None)
    try:
        assert reconciled_phase(template_url, "marked", wants)[0] == "Ready"
    finally:
        update_platform_settings({"templates.envSecrets": []}, None)
    # The platform's own Secret cannot be marked at all.
    from streamspace.domain.errors import ValidationError

    with pytest.raises(ValidationError):
        update_platform_settings({"templates.envSecrets": ["streamspace-secrets"]}, None)


def test_a_forged_token_without_a_login_family_is_refused(serve, db_url):
    from streamspace.config import environment

    admin_id = make_user("forge-admin", role="admin")
    cfg = environment()
    now = int(time.time())
    claims = {"sub": admin_id, "username": "forge-admin", "role": "admin", "groups": [], "iss": cfg.jwt_issuer,
              "aud": cfg.jwt_audience, "iat": now, "exp": now + 600, "jti": uuid.uuid4().hex}
    forged = jwt.encode(claims, cfg.jwt_keys[cfg.jwt_signing_kid], algorithm="HS256",
                        headers={"kid": cfg.jwt_signing_kid})
    base = serve("auth")
    answer = requests.get(base + "/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"}, timeout=10)
    assert answer.status_code == 401
    # ... and a made-up family is no better than none.
    claims["sid"] = str(uuid.uuid4())
    forged = jwt.encode(claims, cfg.jwt_keys[cfg.jwt_signing_kid], algorithm="HS256",
                        headers={"kid": cfg.jwt_signing_kid})
    answer = requests.get(base + "/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"}, timeout=10)
    assert answer.status_code == 401


def _egress_except(config: ReconcileConfig) -> list[str]:
    from streamspace.domain.templates import parse_template_spec

    spec = template_manifest("firefox")["spec"]
    session = {"metadata": {"name": "alice-firefox-1", "namespace": "streamspace", "uid": "u1"},
               "spec": {"user": "alice", "template": "firefox", "state": "running"}}
    policy = next(o for o in desired_objects(session, parse_template_spec(spec), config)
                  if o["kind"] == "NetworkPolicy")
    return [cidr for rule in policy["spec"]["egress"] for peer in rule["to"]
            for cidr in (peer.get("ipBlock") or {}).get("except", [])]


def test_a_desktop_cannot_reach_the_platform_namespace_or_cluster_ranges():
    denied = _egress_except(ReconcileConfig.from_values({}))
    for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.169.254/32",
                 "fc00::/7"):
        assert any(cidr == d or (cidr == "169.254.169.254/32" and d == "169.254.0.0/16") for d in denied), cidr
    # Admins choose the ranges; the metadata service stays denied whatever they choose.
    custom = _egress_except(ReconcileConfig.from_values({"session.egressDenyCidrs": ["10.96.0.0/12"]}))
    assert "10.96.0.0/12" in custom and "169.254.169.254/32" in custom and "10.0.0.0/8" not in custom
