"""The function set: which functions exist, what kind each is, and loading one in-process.

The folders under `functions/` are the single list; images, Knative services, the local runner
and the OpenAPI document are all derived from it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from streamspace.buildinfo import build_info
from streamspace.records import record


@record
class FunctionInfo:
    name: str
    source: Path
    kind: str  # "http" or "cloudevent"

    @property
    def target(self) -> str:
        return "handle"


def functions_dir() -> Path:
    configured = os.environ.get("STREAMSPACE_FUNCTIONS_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "functions"


@lru_cache(maxsize=1)
def discover() -> tuple[FunctionInfo, ...]:
    found = []
    for main in sorted(functions_dir().glob("*/main.py")):
        text = main.read_text(encoding="utf-8")
        if "@functions_framework.cloud_event" in text:
            kind = "cloudevent"
        elif "@functions_framework.http" in text:
            kind = "http"
        else:
            raise RuntimeError(f"{main}: no @functions_framework.http or .cloud_event target")
        found.append(FunctionInfo(main.parent.name, main, kind))
    return tuple(found)


def by_name(name: str) -> FunctionInfo:
    for info in discover():
        if info.name == name:
            return info
    raise KeyError(f"no function named {name!r} under {functions_dir()}")


def load(name: str) -> ModuleType:
    """Import a function's main.py under a unique module name (they are all called main.py)."""
    info = by_name(name)
    module_name = "streamspace_function_" + name.replace("-", "_")
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, info.source)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {info.source}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def http_apis() -> list:  # list[streamspace.http.Api]; untyped to keep this module import-light
    return [load(info.name).api for info in discover() if info.kind == "http"]


def run_entry_point(source: str, argv: list[str] | None = None) -> int:
    """`python functions/<name>/main.py [--version] [--port N]`: print the build banner, or serve
    this one function with functions-framework's development server."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"functions/{Path(source).parent.name}/main.py")
    parser.add_argument("--version", action="store_true", help="print the build version and exit")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--host", default="127.0.0.1")
    options = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if options.version:

        print(build_info().banner())
        return 0
    from functions_framework import create_app

    create_app(target="handle", source=source).run(host=options.host, port=options.port)
    return 0
