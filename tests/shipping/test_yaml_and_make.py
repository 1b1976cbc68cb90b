"""yamllint over every YAML file the project ships, and the Makefile's shipping targets."""

from __future__ import annotations

from pathlib import Path

from .conftest import ROOT, run, venv_tool

YAML_PATHS = [".github", "knative", "deploy", "crds", "docker-compose.yml", "docker-compose.kube.yml", ".yamllint"]


def test_yamllint() -> None:
    proc = run([venv_tool("yamllint"), "--strict", "-c", str(ROOT / ".yamllint"), *YAML_PATHS])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_yamllint_rejects_a_broken_copy(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    text = (ROOT / "knative/eventing/brokers.yaml").read_text()
    broken.write_text(text.replace("  name: streamspace-dlq", "  name: a\n  name: b"))
    proc = run([venv_tool("yamllint"), "--strict", "-c", str(ROOT / ".yamllint"), str(broken)])
    assert proc.returncode != 0 and "duplication" in proc.stdout


def test_make_help_lists_the_shipping_targets() -> None:
    out = run(["make", "help"]).stdout
    for target in ("docker-build", "docker-build-api", "docker-build-controller", "docker-build-%",
                   "docker-build-multiarch", "docker-push", "docker-compose-up", "docker-compose-up-dev",
                   "docker-compose-down", "docker-compose-logs", "k8s-apply-crds", "kn-deploy", "helm-lint",
                   "helm-template", "validate", "tools"):
        assert f"  {target} " in out, target


def test_make_targets_dry_run() -> None:
    multi = run(["make", "-n", "docker-build-multiarch", "VERSION=v1.0.0"]).stdout
    assert "--platform linux/amd64,linux/arm64" in multi and "--push" in multi
    up = run(["make", "-n", "docker-compose-up-dev", "COMPOSE=docker compose"]).stdout
    assert "--profile dev --profile monitoring up -d" in up
    kn = run(["make", "-n", "kn-deploy", "KN=", "KUBECTL=kubectl"]).stdout
    assert "kustomize build/kn-deploy" in kn
    crds = run(["make", "-n", "k8s-apply-crds", "KUBECTL=kubectl"]).stdout
    assert "CustomResourceDefinition" in crds
