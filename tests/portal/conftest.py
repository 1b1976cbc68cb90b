"""The portal under test: the whole local system as `make run` starts it (real Postgres, the
simulated cluster, every function behind one port, the local event relay), and a real headless
Debian chromium driven by playwright, one per test module. axe-core (from npm, `make tools`) is
run on every page a test visits; screenshots go to build/test-artifacts/portal/."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "tools" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "build" / "test-artifacts" / "portal"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
ADMIN_PASSWORD = os.environ["ADMIN_PASSWORD"]  # the bootstrap admin's (tests/conftest.py)
PASSWORD = "portal-password-1"


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    from tests.sim.sim_helpers import eventually

    return eventually(predicate, what, timeout)


@pytest.fixture(scope="module")
def stack(db_url: str) -> Iterator[Any]:
    """Everything `make run` starts, on a free port, against this module's database."""
    from streamspace import kube
    from streamspace.local.runner import LocalStack
    from tests.conftest import environment

    # LocalStack points DATABASE_URL, KUBECONFIG, K_SINK and SESSIONS_NAMESPACE at what it started: put them back after.
    kept = {key: os.environ.get(key) for key in ("DATABASE_URL", "KUBECONFIG", "K_SINK", "SESSIONS_NAMESPACE")}
    with environment(CATALOG_ALLOW_FILE_URLS="true", **kept):  # the test repositories are local git folders
        local = LocalStack(cluster="sim", kubelet_delay=0.3, announce=lambda line: None).start()
        yield local
        local.stop()
    kube.reset_client()


@pytest.fixture(scope="module")
def base(stack: Any) -> str:
    return str(stack.api_url)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no chromium at {CHROMIUM}: `make browser` installs Debian's (apt-get install chromium)")
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def new_user(role: str = "user", prefix: str = "u") -> tuple[str, str]:
    """A user with PASSWORD; (username, id)."""
    from tests.conftest import make_user

    username = f"{prefix}{uuid.uuid4().hex[:8]}"
    return username, make_user(username, role=role, password=PASSWORD)


def principal(user_id: str, username: str, role: str = "user") -> Any:
    from streamspace.auth.principal import Principal

    return Principal(user_id=user_id, username=username, role=role, groups=(), family_id=None)


class Pages:
    """One browser context (one person) with the checks every visited page gets."""

    def __init__(self, browser: Any, base: str, *, width: int = 1280, height: int = 900,
                 headers: dict[str, str] | None = None, **context_options: Any) -> None:
        self.base = base
        self.context = browser.new_context(viewport={"width": width, "height": height},
                                           extra_http_headers=headers or {}, **context_options)
        self.page = self.context.new_page()
        self.csp_violations: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda msg: self.csp_violations.append(msg.text)
                     if "Content Security Policy" in msg.text else None)
        self.page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))

    def goto(self, path: str) -> Any:
        return self.page.goto(self.base + path)

    def login(self, username: str, password: str = PASSWORD, path: str = "/login") -> None:
        self.goto(path)
        self.page.fill("#f-username", username)
        self.page.fill("#f-password", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_load_state()

    def check(self, name: str) -> None:
        """axe-core on the page as it is now: no serious or critical violation; and a screenshot."""
        page = self.page
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")  # through the DevTools protocol, not a <script>
        found = page.evaluate("""async () => {
            const result = await axe.run(document, {resultTypes: ['violations']});
            return result.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                .map(v => v.id + ' (' + v.impact + '): '
                     + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '));
        }""")
        self.screenshot(name)
        assert found == [], f"axe-core on {name} ({page.url}): {found}"
        assert self.csp_violations == [], f"Content-Security-Policy violations on {name}: {self.csp_violations}"

    def check_before_it_moves_on(self, name: str, moves_to: Callable[[str], bool], action: Callable[[], Any]) -> str:
        """For a page that moves on by itself (a meta refresh): do `action` (which returns the page it
        opened, or None for this one); the request for where the page moves on to (`moves_to(url)`) is
        answered 204 No Content, so the browser stays on the page; check it as `check` does. Returns
        the address it was moving on to: the caller goes there to see the rest work. (Holding the
        request instead blocks every evaluation in the page until it is let go.)"""
        leaving: list[str] = []

        def stay(route: Any) -> None:
            leaving.append(route.request.url)
            route.fulfill(status=204)

        self.context.route(moves_to, stay)
        shown = self.page
        try:
            with self.context.expect_event("request", predicate=lambda r: moves_to(r.url)):
                self.page = action() or shown
            # any playwright call lets the route's handler run
            wait_until(lambda: self.page.evaluate("document.readyState") == "complete" and leaving,
                       f"{name} moving on")
            assert not moves_to(self.page.url), f"{name} moved on before it was checked"
            self.check(name)
        finally:
            self.page = shown
            self.context.unroute(moves_to, stay)
        return leaving[0]

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"),
                             full_page=True)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def person(browser: Any, base: str) -> Iterator[Callable[..., Pages]]:
    opened: list[Pages] = []

    def open_pages(**kwargs: Any) -> Pages:
        pages = Pages(browser, base, **kwargs)
        opened.append(pages)
        return pages

    yield open_pages
    for pages in opened:
        pages.close()


def admin_principal() -> Any:
    return principal(_admin_id(), "admin", "admin")


def make_template(name: str, **spec: Any) -> dict[str, Any]:
    """A Template installed as an admin would (the library's own create), Ready once reconciled."""
    from streamspace.templates import service as templates

    body = {"name": name, "displayName": spec.pop("displayName", name.title()),
            "description": spec.pop("description", f"The {name} desktop"),
            "category": spec.pop("category", "Desktops"), "baseImage": spec.pop("baseImage", f"example.com/{name}:1"),
            "defaultResources": {"cpu": "1", "memory": "1Gi"}, "vnc": {"enabled": True, "port": 3000}, **spec}
    created = templates.create_template(body, admin_principal())
    wait_until(lambda: templates.get_template(name, admin_principal())["status"]["phase"] == "Ready",
               f"template {name} Ready")
    return created


def _admin_id() -> str:
    from streamspace.db import fetch_one

    row = fetch_one("SELECT id::text AS id FROM users WHERE username = 'admin'")
    assert row is not None
    return str(row["id"])
