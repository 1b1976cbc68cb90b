"""The library's layers hold: import-linter's contracts (pyproject.toml) pass, and they cover every
top-level module, so a new module cannot slip in beside the layers unchecked."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "shared" / "streamspace"


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def test_lint_imports_keeps_every_contract() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_no_contract_ignores_an_import() -> None:
    """Every import that crossed a layer or closed a cycle was moved to where it belongs: an exception
    in a contract would be a piece of work left undone, not a permission (issue 13)."""
    excepted = {c["id"]: c["ignore_imports"] for c in _config()["contracts"] if c.get("ignore_imports")}
    assert excepted == {}


def test_the_layers_name_every_top_level_module() -> None:
    top_level = {f"streamspace.{p.stem}" for p in LIBRARY.glob("*.py") if p.stem != "__init__"}
    top_level |= {f"streamspace.{p.parent.name}" for p in LIBRARY.glob("*/__init__.py")}
    layers = next(c for c in _config()["contracts"] if c["id"] == "library-layers")["layers"]
    named = {m.strip() for layer in layers for m in layer.replace(":", "|").split("|")}
    assert top_level - named == set(), "place the new module in a layer of the library-layers contract"
    assert named - top_level == set(), "the layers name a module that no longer exists"


# SQL that reads or writes the sessions package's tables: its store modules are the only code that
# does (issue 13). The packages the sessions API calls (quotas, users, desktop access) cannot call its
# store without an import cycle; they read the views it publishes for them (migration 0022), and
# nothing writes through those.
_SESSION_TABLES = re.compile(
    r"\b(FROM|JOIN|UPDATE|INTO)\s+(sessions|connections|session_tombstones|session_starts|warm_pool_stats"
    r"|session_list_marks)\b")
_SESSION_VIEW_WRITES = re.compile(r"\b(UPDATE|INTO|DELETE\s+FROM)\s+(session_holdings|session_owners)\b")
SESSIONS_STORE = {"sessions/store.py", "sessions/index_store.py", "sessions/starts_store.py",
                  "sessions/warm_store.py"}


def _python_sources() -> dict[str, str]:
    """Library and function sources (not the simulated API server) by path, the library's relative."""
    sources = {str(p.relative_to(LIBRARY)): p.read_text() for p in LIBRARY.rglob("*.py") if "sim" not in p.parts}
    sources |= {str(p.relative_to(ROOT)): p.read_text() for p in (ROOT / "functions").rglob("*.py")}
    return sources


def test_only_the_sessions_store_speaks_sql_to_the_sessions_tables() -> None:
    speaking = {path for path, text in _python_sources().items() if _SESSION_TABLES.search(text)}
    assert SESSIONS_STORE - speaking == set(), "the pattern no longer finds the store's own SQL"
    assert speaking - SESSIONS_STORE == set(), \
        "read and write the sessions package's tables through its store (streamspace.sessions.store ...)"


def test_the_views_the_sessions_package_publishes_are_only_read() -> None:
    writing = {path for path, text in _python_sources().items() if _SESSION_VIEW_WRITES.search(text)}
    assert writing == set(), "write sessions through streamspace.sessions.store, never through its views"


# Tables whose store is already the only code that speaks SQL to them, with that store.
_STORE_OF_TABLES = {
    "templates/store.py": ("template_index",),
    "catalog/store.py": ("repositories", "catalog_templates"),
}


@pytest.mark.parametrize("store", sorted(_STORE_OF_TABLES))
def test_only_its_store_speaks_sql_to_a_resources_tables(store: str) -> None:
    tables = "|".join(_STORE_OF_TABLES[store])
    pattern = re.compile(rf"\b(FROM|JOIN|UPDATE|INTO)\s+({tables})\b")
    speaking = {path for path, text in _python_sources().items() if pattern.search(text)}
    assert store in speaking, "the pattern no longer finds the store's own SQL"
    assert speaking == {store}, f"read and write {', '.join(_STORE_OF_TABLES[store])} through {store}"


# A Template's storage is its object on the API server as much as its index row: the templates store
# is the only code that calls the Kubernetes API on Templates (issue 13), whoever needs one (the
# session API and warm pools, the reconcilers, catalog installs, backups).
TEMPLATES_STORE = "templates/store.py"


def _is_template_kind(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return node.value == "Template"
    return ast.unparse(node).rsplit(".", 1)[-1] == "TEMPLATE_KIND"


def _kube_calls_on_templates(source: str) -> list[int]:
    """Lines where the module calls `streamspace.kube` on the Template kind (`kube.get("Template", ...)`,
    `get(TEMPLATE_KIND, ...)` imported from kube, `kube.KINDS["Template"]`)."""
    tree = ast.parse(source)
    modules: set[str] = set()  # what the module calls streamspace.kube
    functions: set[str] = set()  # names it imported from streamspace.kube
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "streamspace":
            modules |= {a.asname or a.name for a in node.names if a.name == "kube"}
        elif isinstance(node, ast.ImportFrom) and node.module == "streamspace.kube":
            functions |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name == "streamspace.kube"}
    kinds_tables = {f"{m}.KINDS" for m in modules} | ({"KINDS"} & functions)
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if not ((isinstance(func, ast.Attribute) and ast.unparse(func.value) in modules)
                    or (isinstance(func, ast.Name) and func.id in functions)):
                continue
            if any(_is_template_kind(a) for a in [*node.args, *(k.value for k in node.keywords)]):
                lines.append(node.lineno)
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) in kinds_tables \
                and _is_template_kind(node.slice):
            lines.append(node.lineno)
    return lines


def test_only_the_templates_store_calls_the_kubernetes_api_on_templates() -> None:
    calling = {path: lines for path, text in _python_sources().items() if (lines := _kube_calls_on_templates(text))}
    assert TEMPLATES_STORE in calling, "the check no longer finds the store's own calls"
    del calling[TEMPLATES_STORE]
    assert calling == {}, "read and write Template objects through streamspace.templates.store"
