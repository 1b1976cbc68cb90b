"""Every object desired_objects() produces, for every sample Template, in every shape a Session can take,
validates strictly (unknown fields refused) against the official schemas of the oldest Kubernetes the
docs support (README / docs/deploy.md: >= 1.28), the one the e2e workflow runs (1.32) and the newest
kubernetes-validate ships: the simulator accepts what a real API server might refuse, this does not."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes_validate import utils as kv
from referencing import Registry, Resource

from streamspace.config import ProfileAgentSettings
from streamspace.domain.templates import parse_template_spec
from streamspace.reconcile.desired import desired_objects
from streamspace.settings.effective import ReconcileConfig

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "crds" / "samples").glob("template-*.yaml"))
OLDEST, E2E = "1.28.0", "1.32.0"
NEWEST = max((p.name[1:].removesuffix("-local-strict") for p in (Path(kv.__file__).parent / "kubernetes-json-schema")
              .glob("v*-local-strict")), key=lambda v: tuple(int(x) for x in v.split(".")))
SECRETS = ("kasm-vnc",)  # what an admin marks for templates (the gimp sample reads its VNC password there)
CONFIGS = {
    "traefik": ReconcileConfig(env_secrets=SECRETS),
    "nginx with TLS and a storage class": ReconcileConfig(ingress_controller="nginx", ingress_class="nginx",
                                                          ingress_tls_secret="wildcard-tls", storage_class="fast",
                                                          ingress_port=8443, env_secrets=SECRETS),
    # Persistent profiles: the agent as a native sidecar (>= 1.29) and as a regular container (1.28).
    "profiles in S3": ReconcileConfig(env_secrets=SECRETS, home_storage="s3"),
    "profiles in S3, the agent a regular container": ReconcileConfig(
        env_secrets=SECRETS, home_storage="s3", profile_agent=ProfileAgentSettings(sidecar="container")),
}
PROFILE_TOKEN = "ssp1:streamspace:alice-x1:0b7f7ab6-user:" + "0" * 64
SESSIONS = {
    "running": {},
    "hibernated": {"state": "hibernated"},
    "without a persistent home": {"persistentHome": False},
    "with its own resources": {"resources": {"requests": {"cpu": "250m", "memory": "1Gi"},
                                             "limits": {"cpu": "1", "memory": "3Gi"}}},
}


@functools.cache
def _definitions(version: str) -> Any:
    return kv.schema_contents(f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version)


@functools.cache
def _validator(version: str, kind: str, api_version: str) -> jsonschema.Draft202012Validator:
    """kubernetes_validate.validate(obj, version, strict=True), with the schemas loaded once (the shared
    definitions file is large: loading it for every object would take minutes)."""
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)  # as kubernetes_validate names its files
    schema = kv.schema_contents(f"kubernetes-json-schema/v{version}-local-strict/{kind.lower()}-{api}.json", version)
    registry = Resource.from_contents(_definitions(version)) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _session(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "stream.space/v1alpha1", "kind": "Session",
            "metadata": {"name": f"alice-{name}-x1", "namespace": "streamspace", "uid": "0b7f7ab6-uid",
                         "generation": 1},
            "spec": {"user": "alice", "template": name, "state": "running", **spec}}


def test_there_are_sample_templates_and_schemas_of_at_least_1_32_to_check_them_against():
    """Guards the parametrized test below: a glob that found nothing would check nothing and pass."""
    assert len(SAMPLES) >= 6 and tuple(int(x) for x in NEWEST.split(".")) >= (1, 32)


@pytest.mark.parametrize("version", [OLDEST, E2E, NEWEST])
@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_desired_objects_validate_strictly_against_the_official_schemas(sample, version):
    template = yaml.safe_load(sample.read_text())
    spec = parse_template_spec(template["spec"])
    problems = []
    kinds = set()
    for config_name, config in CONFIGS.items():
        for shape, extra in SESSIONS.items():
            session = _session(template["metadata"]["name"], **extra)
            for obj in desired_objects(session, spec, config, PROFILE_TOKEN):
                kinds.add(obj["kind"])
                for err in _validator(version, obj["kind"], obj["apiVersion"]).iter_errors(obj):
                    where = "/".join(str(p) for p in err.path)
                    problems.append(f"{config_name}, {shape}: {obj['kind']}: {err.message} at {where}")
    assert not problems, "\n".join(problems)
    assert {"Deployment", "Service", "NetworkPolicy", "Ingress", "PersistentVolumeClaim", "Secret"} <= kinds


@pytest.mark.parametrize("version", [OLDEST, E2E, NEWEST])
def test_the_image_puller_daemonset_validates_strictly_against_the_official_schemas(version):
    from streamspace.reconcile.pullers import puller_daemonset

    for sample in SAMPLES:
        image = yaml.safe_load(sample.read_text())["spec"]["baseImage"]
        obj = puller_daemonset(image, "streamspace-sessions")
        errors = [f"{err.message} at {'/'.join(str(p) for p in err.path)}"
                  for err in _validator(version, obj["kind"], obj["apiVersion"]).iter_errors(obj)]
        assert not errors, f"{sample.stem}: " + "\n".join(errors)


@pytest.mark.parametrize("version", [OLDEST, E2E, NEWEST])
def test_warm_pools_and_the_sessions_that_claim_them_validate_strictly_against_the_official_schemas(version):
    """The pool (its Deployment and NetworkPolicy; with profiles, the agent waiting for its claim, its port
    and startup probe) and a claimed desktop's session set (its policy letting session-reconcile in)."""
    from streamspace.reconcile.warm import pool_objects

    problems = []
    for sample in SAMPLES:
        template = yaml.safe_load(sample.read_text())
        template["metadata"].update({"namespace": "streamspace", "uid": "7c1d-uid"})
        spec = parse_template_spec(template["spec"])
        for config_name in ("traefik", "profiles in S3"):
            config = CONFIGS[config_name]
            claimed = desired_objects(_session(template["metadata"]["name"]), spec, config, PROFILE_TOKEN, warm=True)
            for obj in [*pool_objects(template, spec, config, 2), *claimed]:
                problems += [f"{sample.stem}, {config_name}: {obj['kind']}: {err.message} at "
                             f"{'/'.join(str(p) for p in err.path)}"
                             for err in _validator(version, obj["kind"], obj["apiVersion"]).iter_errors(obj)]
    assert not problems, "\n".join(problems)
