"""The venvs the bench serves its apps from: what a function image holds, not the development venv.

A function image's venv (the Dockerfile's builder stage) holds the library's runtime requirements plus
the function's own requirements.txt (deploy/docker/requirements.py prints them), the project installed
(not editable), everything compiled (compileall) and the portal's templates precompiled
(`python -m streamspace precompile`). The development venv holds some 320 packages (pytest, moto,
playwright, mypy, ...), and a start's importlib.metadata lookups (functions-framework's, the
drivers') list every dist-info in site-packages: serving from it inflates every start, hello world's
included, by what production never carries.

One venv per distinct requirement list: the functions without a requirements.txt share `functions`,
a function with one (backup, storage) has its own, named after it; each pair's hello world is served
from its function's venv, so a ratio compares two apps in the same image. The venvs are made with the
development venv's interpreter: the images use the Dockerfile's PYTHON_IMAGE (Python 3.12); a
machine without that Python measures its own version, which the table prints. A venv's packages are
installed on first use and again whenever pyproject.toml, the function's requirements.txt or the
interpreter changes (the stamp in each venv); the project itself is installed again whenever its
sources change, so the bench always serves the checkout's code. The load generator, the simulated
API server, Postgres and the bench itself stay in the development venv.

`python -m bench.production_venv` builds or refreshes every function's venv (`make bench` runs it).
"""

from __future__ import annotations

import hashlib
import importlib.util
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.support import ROOT

VENVS = ROOT / ".bench-venvs"
SHARED = "functions"  # the venv of every function without a requirements.txt of its own
_STAMP = ".bench-stamp"  # the packages' key: pyproject.toml, the requirement list, the interpreter
_PROJECT_STAMP = ".bench-project"  # the installed project's key: the digest of its sources


@dataclass(frozen=True)
class ProductionVenv:
    """One image-like venv: its folder and the commands in it."""

    path: Path

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    @property
    def functions_framework(self) -> str:
        return str(self.path / "bin" / "functions-framework")

    def serving_env(self, env: dict[str, str]) -> dict[str, str]:
        """`env` as the image's runtime stage extends it: the venv's bin first on PATH."""
        return {**env, "PATH": f"{self.path / 'bin'}:{env.get('PATH', '')}"}


def _image_requirements(function: str) -> list[str]:
    """What the Dockerfile pip-installs for FUNCTION (deploy/docker/requirements.py, the same call)."""
    spec = importlib.util.spec_from_file_location("image_requirements", ROOT / "deploy" / "docker" / "requirements.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.requirements(ROOT / "pyproject.toml", ROOT / "functions", function))


def venv_name(function: str) -> str:
    return function if (ROOT / "functions" / function / "requirements.txt").is_file() else SHARED


def _packages_key(requirements: list[str]) -> str:
    digest = hashlib.sha256()
    digest.update(f"{sys.version} {platform.machine()}\n".encode())
    digest.update((ROOT / "pyproject.toml").read_bytes())
    digest.update("\n".join(requirements).encode())
    return digest.hexdigest()


def _project_files() -> list[Path]:
    """The files the Dockerfile copies to build the project: pyproject.toml, README.md, shared/."""
    files = [ROOT / "pyproject.toml", ROOT / "README.md"]
    files += sorted(p for p in (ROOT / "shared").rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts and not any(
                        part.endswith(".egg-info") for part in p.parts) and p.name != "_build.py")
    return files


def _project_key(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _run(command: list[str], **kw: object) -> None:
    done = subprocess.run(command, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {(done.stderr or done.stdout)[-3000:]}")


def _pip_install(venv: ProductionVenv, *args: str) -> None:
    """`pip install ARGS` into `venv`, run by the development venv's pip (`--python`: the same install, and
    a newer pip than the one a venv starts with resolves and caches faster)."""
    _run([sys.executable, "-m", "pip", "--python", venv.python, "install", "-q", "--disable-pip-version-check",
          "--require-virtualenv", *args])


def _build_packages(venv: ProductionVenv, requirements: list[str], key: str) -> None:
    """A fresh venv with exactly the image's requirements (`pip install -r`, as the builder stage)."""
    print(f"bench: building the production venv {venv.path.name} ({len(requirements)} requirements)",
          file=sys.stderr, flush=True)
    shutil.rmtree(venv.path, ignore_errors=True)
    venv.path.parent.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "venv", str(venv.path)])
    listed = venv.path / "image-requirements.txt"
    listed.write_text("".join(f"{r}\n" for r in requirements))
    _pip_install(venv, "-r", str(listed))
    (venv.path / _STAMP).write_text(key)


def _install_project(targets: list[ProductionVenv], key: str, files: list[Path]) -> None:
    """The project as the builder stage installs it (a wheel of pyproject.toml, README.md and shared/,
    `--no-deps`), then compileall over the venv and the portal's templates precompiled."""
    with tempfile.TemporaryDirectory(prefix="ssb-project-") as tmp:
        source = Path(tmp) / "src"
        for path in files:
            copy = source / path.relative_to(ROOT)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
        # one wheel for every venv, built in an isolated build environment as `pip install .` does
        _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
              "-w", str(Path(tmp) / "wheels"), str(source)])
        wheel = next((Path(tmp) / "wheels").glob("streamspace-*.whl"))
        for venv in targets:
            _pip_install(venv, "--no-deps", "--force-reinstall", str(wheel))
            _run([venv.python, "-m", "compileall", "-q", str(venv.path)])
            _run([venv.python, "-m", "streamspace", "precompile"], cwd=tmp)
            (venv.path / _PROJECT_STAMP).write_text(key)


def production_venvs(functions: list[str]) -> dict[str, ProductionVenv]:
    """{function: the image-like venv it is served from}, built or refreshed where needed."""
    found = {function: ProductionVenv(VENVS / venv_name(function)) for function in functions}
    venvs = {venv.path: (venv, function) for function, venv in found.items()}  # one function names each venv
    for venv, function in venvs.values():
        requirements = _image_requirements(function)
        key = _packages_key(requirements)
        stamp = venv.path / _STAMP
        if not (stamp.is_file() and stamp.read_text() == key and Path(venv.functions_framework).is_file()):
            _build_packages(venv, requirements, key)
    files = _project_files()
    key = _project_key(files)
    stale = [venv for venv, _ in venvs.values()
             if not ((venv.path / _PROJECT_STAMP).is_file() and (venv.path / _PROJECT_STAMP).read_text() == key)]
    if stale:
        _install_project(stale, key, files)
    return found


def shared_venv(venvs: dict[str, ProductionVenv]) -> ProductionVenv:
    """The venv of the functions without requirements of their own: the reference row's and the
    throughput half's hello world are served from it."""
    for venv in venvs.values():
        if venv.path.name == SHARED:
            return venv
    raise RuntimeError("every function has a requirements.txt of its own: no shared production venv")


def describe(venvs: dict[str, ProductionVenv]) -> dict[str, Any]:
    """What the table says of the venvs: their distributions, this Python and the images'."""
    image = re.search(r"^ARG PYTHON_IMAGE=(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    return {"distributions": {venv.path.name: len(list(venv.path.glob("lib/python*/site-packages/*.dist-info")))
                              for venv in venvs.values()},
            "python": platform.python_version(), "image_python": image.group(1) if image else "unknown"}


def all_functions() -> list[str]:
    return sorted(p.parent.name for p in (ROOT / "functions").glob("*/main.py"))


def main() -> int:
    for function, venv in production_venvs(all_functions()).items():
        print(f"{function}: {venv.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
