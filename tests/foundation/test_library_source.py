"""Rules about the library's source that no behaviour test can see (issue 13, section 3)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = sorted([*(ROOT / "shared" / "streamspace").rglob("*.py"), *(ROOT / "functions").rglob("*.py")])


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _nodes() -> Iterator[tuple[str, ast.AST, set[int]]]:
    for path in LIBRARY:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            yield f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}", node, docstrings


def test_the_library_source_was_found():
    assert len(LIBRARY) > 100 and any(p.name == "conversion.py" for p in LIBRARY)


def test_library_code_narrows_without_assert():
    """`python -O` removes assert statements: an invariant the code relies on raises instead."""
    found = [where for where, node, _ in _nodes() if isinstance(node, ast.Assert)]
    assert not found, found


def test_the_api_group_and_version_are_spelled_in_one_place():
    """domain.conversion.API_VERSION is the one spelling of stream.space/v1alpha1 in code (docstrings
    may name it)."""
    found = [where for where, node, docstrings in _nodes()
             if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
             and "stream.space/v1" in node.value]
    assert not found, found
