"""GitHub workflows: actionlint and the github-workflows JSON schema (vendored in check-jsonschema,
so offline), plus the guide's triggers and image tags."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from .conftest import ROOT, run, venv_tool

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def load(name: str) -> dict:
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads `on` as True
    return doc


def test_expected_workflows() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "docker.yml", "release.yml", "e2e.yml"}


def test_actionlint() -> None:
    proc = run([venv_tool("actionlint"), "-no-color", *map(str, WORKFLOWS)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflow_schema() -> None:
    proc = run([venv_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_pinned_actions_and_permissions() -> None:
    for path in WORKFLOWS:
        text = path.read_text()
        for ref in re.findall(r"uses:\s*(\S+)", text):
            assert re.search(r"@(v\d+(\.\d+)*|[0-9a-f]{40})$", ref), f"{path.name}: {ref} is not pinned"
        doc = yaml.safe_load(text)
        assert doc.get("permissions") == {"contents": "read"}, f"{path.name}: top-level permissions"
        for job in doc["jobs"].values():
            assert job.get("timeout-minutes"), path.name


def test_guide_triggers_and_tags() -> None:
    docker = load("docker.yml")
    assert docker["on"]["push"] == {"branches": ["main"], "tags": ["v*"]} and "workflow_dispatch" in docker["on"]
    build = docker["jobs"]["build"]
    assert build["permissions"]["packages"] == "write"
    steps = {s.get("uses", "").split("@")[0]: s for s in build["steps"]}
    tags = steps["docker/metadata-action"]["with"]["tags"]
    for needle in ("type=ref,event=branch", "prefix=main-", "type=ref,event=tag", "pattern={{version}}",
                   "pattern={{major}}.{{minor}}", "group=1", "value=latest"):
        assert needle in tags, needle
    push = steps["docker/build-push-action"]["with"]
    assert push["platforms"] == "linux/amd64,linux/arm64" and push["push"] is True
    assert push["cache-from"].startswith("type=gha")
    for arg in ("FUNCTION=", "VERSION=", "COMMIT=", "BUILD_DATE="):
        assert arg in push["build-args"]
    assert "functions/*/main.py" in docker["jobs"]["functions"]["steps"][1]["run"]
    ci = load("ci.yml")
    assert "pull_request" in ci["on"] and ci["on"]["push"]["branches"] == ["**"]
    ci_text = (ROOT / ".github/workflows/ci.yml").read_text()
    for cmd in ("make lint", "make test", "make validate"):
        assert cmd in ci_text
    release = load("release.yml")
    assert release["on"]["push"]["tags"] == ["v*"]
    assert "helm package" in (ROOT / ".github/workflows/release.yml").read_text()
    e2e = (ROOT / ".github/workflows/e2e.yml").read_text()
    for needle in ("kind", "serving-core.yaml", "eventing-core.yaml", "helm install", "Running"):
        assert needle in e2e


def test_broken_workflow_is_rejected(tmp_path: Path) -> None:
    src = (ROOT / ".github/workflows/ci.yml").read_text()
    bad_expr = tmp_path / "bad-expr.yml"
    bad_expr.write_text(src.replace("run: make lint", "run: echo ${{ github.nonexistent_context_key }}"))
    assert run([venv_tool("actionlint"), "-no-color", str(bad_expr)]).returncode != 0
    bad_schema = tmp_path / "bad-schema.yml"
    bad_schema.write_text(src.replace("runs-on: ubuntu-24.04", "runs_on: ubuntu-24.04", 1))
    assert run([venv_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                str(bad_schema)]).returncode != 0
