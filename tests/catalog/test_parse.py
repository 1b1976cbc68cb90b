"""Parsing a checkout: kinds, formats, per-file errors and the limits against hostile content."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamspace.catalog.parse import CheckoutRefused, Limits, parse_checkout, parse_text

from .gitrepo import LEGACY_FIREFOX, MULTI, OPENSHIFT, VSCODE, alias_bomb, template


def write(root: Path, relative: str, text: str | bytes) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def test_both_formats_multi_documents_and_other_kinds(tmp_path: Path) -> None:
    write(tmp_path, "a/firefox.yaml", LEGACY_FIREFOX)
    write(tmp_path, "b/vscode.yml", VSCODE)
    write(tmp_path, "multi.YAML", MULTI)
    write(tmp_path, "openshift.yaml", OPENSHIFT)
    write(tmp_path, "notes.txt", "kind: Template\n")
    write(tmp_path, ".git/config.yaml", LEGACY_FIREFOX.replace("firefox", "hidden"))
    result = parse_checkout(tmp_path)
    assert sorted(t.name for t in result.templates) == ["firefox", "gimp", "vscode"]
    assert [(e.path, e.document) for e in result.errors] == [("multi.YAML", 3)]
    firefox = next(t for t in result.templates if t.name == "firefox")
    assert firefox.source_path == "a/firefox.yaml" and firefox.tags == ["firefox", "browser"]
    assert firefox.manifest["spec"]["vnc"] == {"enabled": True, "port": 3000, "protocol": "websocket",
                                               "encryption": False}
    assert result.files == 4


def test_alias_bomb_is_refused_before_anything_is_built() -> None:
    entries, errors = parse_text(alias_bomb(), "bomb.yaml")
    assert entries == [] and len(errors) == 1 and "alias" in errors[0].message


def test_expanded_size_cap_is_a_second_line_of_defence() -> None:
    limits = Limits(max_aliases_per_file=10_000, max_expanded_nodes=1000)
    entries, errors = parse_text(alias_bomb(), "bomb.yaml", limits)
    assert entries == [] and "once aliases are expanded" in errors[0].message


def test_complexity_limits() -> None:
    deep = "apiVersion: stream.space/v1alpha1\nkind: Template\nspec: " + "[" * 200 + "]" * 200 + "\n"
    assert "nested deeper" in parse_text(deep, "deep.yaml")[1][0].message
    wide = "items: [" + ",".join("1" for _ in range(60_000)) + "]\n"
    assert "YAML nodes" in parse_text(wide, "wide.yaml")[1][0].message
    many = "\n---\n".join("a: 1" for _ in range(150))
    assert "documents" in parse_text(many, "many.yaml")[1][0].message
    anchors = "\n".join(f"k{i}: &a{i} 1" for i in range(40))
    assert "anchors" in parse_text(anchors, "anchors.yaml")[1][0].message


def test_a_few_anchors_are_fine() -> None:
    text = template("anchored").replace("  tags: [t]\n", "  tags: &tags [t]\n") + "# *tags is allowed\n"
    entries, errors = parse_text(text, "ok.yaml")
    assert [e.name for e in entries] == ["anchored"] and errors == []


def test_per_file_errors(tmp_path: Path) -> None:
    write(tmp_path, "big.yaml", "a: " + "x" * (300 * 1024))
    write(tmp_path, "latin1.yaml", "name: caf\xe9".encode("latin-1"))
    write(tmp_path, "noversion.yaml", "kind: Template\nmetadata: {name: x}\nspec: {}\n")
    write(tmp_path, "badversion.yaml", template("v9").replace("v1alpha1", "v9"))
    write(tmp_path, "tags.yaml", "kind: Template\napiVersion: stream.space/v1alpha1\nmetadata: {name: d}\n"
                                 "spec: {displayName: D, baseImage: 'x:1', vnc: {}, created: 2020-01-01,"
                                 " env: [{name: A, value: 2020-01-01}]}\n")
    write(tmp_path, "dup1.yaml", template("same"))
    write(tmp_path, "dup2.yaml", template("same"))
    write(tmp_path, "nomd.yaml", "kind: Template\napiVersion: stream.space/v1alpha1\nspec: {}\n")
    write(tmp_path, "scalar.yaml", "just text\n")
    write(tmp_path, "empty.yaml", "")
    result = parse_checkout(tmp_path)
    errors = {e.path: e.message for e in result.errors}
    assert "larger than 256 KiB" in errors["big.yaml"]
    assert errors["latin1.yaml"] == "not UTF-8 text"
    assert errors["noversion.yaml"].startswith("apiVersion: required")
    assert "apiVersion" in errors["badversion.yaml"]
    assert "spec.created: unknown field" in errors["tags.yaml"]
    assert "duplicate template name 'same'" in errors["dup2.yaml"]
    assert "spec" in errors["nomd.yaml"]
    assert "scalar.yaml" not in errors and "empty.yaml" not in errors
    assert [t.name for t in result.templates] == ["same"]


def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside, "secret.yaml", template("stolen"))
    checkout = tmp_path / "checkout"
    write(checkout, "real.yaml", template("real"))
    os.symlink(outside / "secret.yaml", checkout / "link.yaml")
    os.symlink(outside, checkout / "linkdir")
    result = parse_checkout(checkout)
    assert [t.name for t in result.templates] == ["real"]
    assert [(e.path, e.message) for e in result.errors] == [("link.yaml", "symbolic link not followed")]


def test_whole_checkout_limits(tmp_path: Path) -> None:
    for i in range(5):
        write(tmp_path, f"t{i}.yaml", template(f"t{i}"))
    with pytest.raises(CheckoutRefused, match="more than 3 YAML files"):
        parse_checkout(tmp_path, Limits(max_files=3))
    with pytest.raises(CheckoutRefused, match="templates"):
        parse_checkout(tmp_path, Limits(max_templates=2))
    with pytest.raises(CheckoutRefused, match="MiB of YAML"):
        parse_checkout(tmp_path, Limits(max_total_bytes=300))


def test_the_yaml_parser_is_loaded_with_the_first_file_read_not_with_catalog_sync() -> None:
    """catalog-sync's tick usually finds no repository due and reads no file: its start does not pay
    for PyYAML's import (about a third of its own start), the first file read does."""
    script = ("import sys; from streamspace.catalog import sync; print('yaml' in sys.modules);"
              " from streamspace.catalog.parse import parse_text;"
              " print(parse_text('kind: Template\\napiVersion: stream.space/v1alpha1\\n', 'a.yaml')[1][0].path);"
              " print('yaml' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ}, check=True)
    assert done.stdout.split() == ["False", "a.yaml", "True"], done.stderr
