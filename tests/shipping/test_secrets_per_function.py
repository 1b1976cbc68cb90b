"""Each function is given only the Secret keys it uses, in the chart and the kustomize tree (rendered), and
starts in production with exactly those: a reconciler holds no JWT_SECRET to mint tokens with, only the
migration Job holds the admin password."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, helm_template, kustomize

DATABASE = {"DB_PASSWORD", "DATABASE_URL"}
TOKENS = {"JWT_SECRET", "JWT_PREVIOUS_SECRETS"}
# What each function's code reads from the Secret (beyond the database's).
EXPECTED = {
    "auth": TOKENS | {"STREAMSPACE_SECRET_KEY", "OIDC_CLIENT_SECRET"},
    "portal": TOKENS | {"STREAMSPACE_SECRET_KEY", "OIDC_CLIENT_SECRET"},
    "catalog": TOKENS | {"STREAMSPACE_SECRET_KEY"},
    "webhooks": TOKENS | {"WEBHOOK_SECRET"},
    "catalog-sync": {"STREAMSPACE_SECRET_KEY"},
    # storage also derives the profile agents' token key from the signing key; S3 credentials come from a
    # Secret of the operator's own (s3.existingSecret), given to backup and storage alone (docs/s3.md)
    **{fn: TOKENS for fn in ("auth-check", "sessions", "templates", "users", "cluster", "config", "metrics",
                             "storage")},
    **{fn: set() for fn in ("session-reconcile", "template-reconcile", "idle-sweep", "resync", "dead-letter",
                            "backup")},
}
SECRET = {
    "DB_PASSWORD": "pw", "JWT_SECRET": "j" * 48, "STREAMSPACE_SECRET_KEY": "k" * 43 + "=",
    "WEBHOOK_SECRET": "w" * 32, "ADMIN_USERNAME": "admin", "ADMIN_PASSWORD": "a" * 20,
    "OIDC_CLIENT_SECRET": "client-secret",
}


@pytest.fixture(scope="module")
def trees(kubectl: str, helm: str) -> dict[str, list[dict[str, Any]]]:
    return {"kustomize": kustomize(kubectl, ROOT / "knative"), "chart": helm_template(helm)}


def _secret_env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    assert not any("secretRef" in ref for ref in container.get("envFrom") or []), "the whole Secret"
    return {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container.get("env") or []
            if "secretKeyRef" in (e.get("valueFrom") or {})}


def _process_env(docs: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """The environment the container starts with: the ConfigMap, its own values, the keys it is given."""
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "streamspace-config")
    env = dict(config["data"])
    env.update({e["name"]: e["value"] for e in container.get("env") or [] if "value" in e})
    env.update({name: SECRET[name] for name in _secret_env(container) if name in SECRET})
    return env


@pytest.mark.parametrize("tree", ["kustomize", "chart"])
def test_each_function_gets_only_the_keys_it_uses(tree: str, trees: dict[str, list[dict[str, Any]]]) -> None:
    docs = trees[tree]
    services = {d["metadata"]["name"]: d for d in docs
                if d["kind"] == "Service" and d["apiVersion"].startswith("serving.knative.dev/")}
    assert set(services) == set(EXPECTED)
    for name, svc in services.items():
        container = svc["spec"]["template"]["spec"]["containers"][0]
        given = _secret_env(container)
        assert set(given) == DATABASE | EXPECTED[name], name
        assert {ref["name"] for ref in given.values()} == {"streamspace-secrets"}
        assert all(ref["key"] == key for key, ref in given.items())
        mounted = next(e["value"] for e in container["env"] if e["name"] == "MOUNTED_SECRETS")
        assert set(mounted.split(",")) == set(given), name
        # Keys a deployment may leave out are optional; those it must have stop the pod when missing.
        assert {k for k, ref in given.items() if not ref.get("optional")} == set(given) - DATABASE - {
            "JWT_PREVIOUS_SECRETS", "OIDC_CLIENT_SECRET"}, name
    jobs = [d for d in docs if d["kind"] == "Job"]
    assert len(jobs) == 1
    job_keys = set(_secret_env(jobs[0]["spec"]["template"]["spec"]["containers"][0]))
    assert job_keys == DATABASE | {"ADMIN_USERNAME", "ADMIN_PASSWORD"}


@pytest.mark.parametrize("tree", ["kustomize", "chart"])
def test_each_function_starts_in_production_with_its_keys_alone(tree: str, trees: dict[str, list[dict[str, Any]]],
                                                               tmp_path: Path) -> None:
    from streamspace.config import load_environment

    docs = trees[tree]
    for doc in docs:
        if doc["kind"] == "Job" or (doc["kind"] == "Service" and doc["apiVersion"].startswith("serving.knative.dev/")):
            name = doc["metadata"]["name"]
            container = doc["spec"]["template"]["spec"]["containers"][0]
            env = _process_env(docs, container) | {"STREAMSPACE_DATA_DIR": str(tmp_path),
                                                  # SSO configured for the whole install (the ConfigMap)
                                                  "OIDC_ISSUER": "https://id.example.com",
                                                  "OIDC_CLIENT_ID": "streamspace",
                                                  "OIDC_REDIRECT_URIS": "https://s.example.com/api/v1/auth/oidc/callback"}
            assert env["STREAMSPACE_ENV"] == "production"
            settings = load_environment(env)
            assert bool(settings.jwt_keys) == ("JWT_SECRET" in EXPECTED.get(name, set())), name
            assert bool(settings.secret_key) == ("STREAMSPACE_SECRET_KEY" in EXPECTED.get(name, set())), name
            assert (settings.admin_password is not None) == (doc["kind"] == "Job"), name
    assert not list(tmp_path.iterdir()), "a production process made a key of its own"


def test_a_key_the_process_is_told_it_has_must_be_there(tmp_path: Path) -> None:
    from streamspace.config import ConfigError, load_environment

    base = {"STREAMSPACE_ENV": "production", "DB_HOST": "db", "STREAMSPACE_DATA_DIR": str(tmp_path)}
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        load_environment({**base, "MOUNTED_SECRETS": "DB_PASSWORD,JWT_SECRET"})
    with pytest.raises(ConfigError, match="STREAMSPACE_SECRET_KEY"):
        load_environment({**base, "MOUNTED_SECRETS": "STREAMSPACE_SECRET_KEY"})
    with pytest.raises(ConfigError, match="MOUNTED_SECRETS"):
        load_environment({**base, "MOUNTED_SECRETS": "DB_PASSWORD,AWS_SECRET"})
    # Without MOUNTED_SECRETS (compose, a whole Secret): everything production needs, as before.
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        load_environment(base)
    alone = load_environment({**base, "MOUNTED_SECRETS": "DB_PASSWORD"})
    assert alone.jwt_keys == {} and alone.secret_key is None


def test_without_its_keys_a_function_neither_mints_tokens_nor_makes_a_key(setting: Any, tmp_path: Path) -> None:
    from streamspace.auth.tokens import issue_access_token
    from streamspace.catalog.credentials import encrypt
    from streamspace.domain.errors import DomainError

    setting(STREAMSPACE_ENV="production", DB_HOST="db", MOUNTED_SECRETS="DB_PASSWORD", JWT_SECRET=None,
            STREAMSPACE_SECRET_KEY=None, STREAMSPACE_DATA_DIR=str(tmp_path), DATABASE_URL=None)
    with pytest.raises(DomainError, match="JWT_SECRET"):
        issue_access_token(user_id="u", username="u", role="admin", groups=[], family_id="f")
    with pytest.raises(DomainError, match="STREAMSPACE_SECRET_KEY"):
        encrypt("a repository password")
    assert not list(tmp_path.iterdir())
