"""The portal's templates compiled ahead of time (`python -m streamspace precompile`, the images' build):
loaded without compiling, rendering what a fresh compile renders, and never stale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
import pytest

from streamspace.portal.web import TEMPLATE_DIR, precompile_templates, template_environment

CONTEXT: dict[str, Any] = {"title": "Hello", "items": ["a", "<b>"]}
PAGE = "{% for item in items %}<li>{{ item }}</li>\n{% endfor %}<h1>{{ title }}</h1>"


def _counting_compiles(env: jinja2.Environment) -> list[str]:
    """The names jinja compiles from source in `env` (wraps the third-party method, not ours)."""
    compiled: list[str] = []
    compile_source = env.compile

    def counting(source: str, name: str | None = None, filename: str | None = None, *args: Any, **kw: Any) -> Any:
        compiled.append(str(name))
        return compile_source(source, name, filename, *args, **kw)

    env.compile = counting  # type: ignore[method-assign]
    return compiled


def _templates(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "page.html").write_text(PAGE)
    return folder


def test_every_portal_template_is_loaded_compiled_after_precompile(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    names = precompile_templates(TEMPLATE_DIR, cache)
    assert {"base.html", "sessions.html", "admin/dashboard.html"} <= set(names)
    env = template_environment(TEMPLATE_DIR, cache)
    compiled = _counting_compiles(env)
    for name in names:
        env.get_template(name)
    assert compiled == []
    # and without the cache every one of them is compiled from source
    bare = template_environment(TEMPLATE_DIR, tmp_path / "empty")
    compiled = _counting_compiles(bare)
    bare.get_template("sessions.html")
    assert "sessions.html" in compiled


def test_a_compiled_template_renders_what_a_fresh_compile_renders(tmp_path: Path) -> None:
    templates, cache = _templates(tmp_path), tmp_path / "cache"
    precompile_templates(templates, cache)
    fresh = template_environment(templates, tmp_path / "empty").get_template("page.html").render(CONTEXT)
    assert template_environment(templates, cache).get_template("page.html").render(CONTEXT) == fresh
    assert "<li>&lt;b&gt;</li>" in fresh  # the portal's options: autoescaped, blocks trimmed
    assert "\n\n" not in fresh


def test_an_edited_template_is_compiled_again_never_served_stale(tmp_path: Path) -> None:
    templates, cache = _templates(tmp_path), tmp_path / "cache"
    precompile_templates(templates, cache)
    (templates / "page.html").write_text(PAGE.replace("<h1>", "<h2>").replace("</h1>", "</h2>"))
    env = template_environment(templates, cache)
    compiled = _counting_compiles(env)
    assert env.get_template("page.html").render(CONTEXT).endswith("<h2>Hello</h2>")
    assert compiled == ["page.html"]


def test_the_running_portal_writes_the_cache_only_where_python_writes_bytecode(tmp_path: Path) -> None:
    """The images and the tests run with PYTHONDONTWRITEBYTECODE: there a missing entry is compiled in
    memory only."""
    templates = _templates(tmp_path)
    script = ("import sys; from pathlib import Path; from streamspace.portal.web import template_environment;"
              f" print(template_environment(Path({str(templates)!r}), Path(sys.argv[1]))"
              ".get_template('page.html').render(title='x', items=[]))")
    for options, writes in ((["-B"], False), ([], True)):
        cache = tmp_path / f"cache-{writes}"
        cache.mkdir()
        done = subprocess.run([sys.executable, *options, "-c", script, str(cache)], capture_output=True, text=True,
                              timeout=120, check=True,
                              env={"PATH": "/usr/bin:/bin", "PYTHONPYCACHEPREFIX": str(tmp_path / "pyc")})
        assert done.stdout.strip() == "<h1>x</h1>"
        assert bool(list(cache.iterdir())) is writes


def test_precompiling_into_a_place_it_cannot_write_fails_loudly(tmp_path: Path) -> None:
    templates = _templates(tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError):
        precompile_templates(templates, tmp_path / "file" / "cache")
