"""The reconcile functions served over real HTTP (functions-framework apps on a background server),
against the simulated API server and a real Postgres."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .reconcile_helpers import add_template


@pytest.fixture(scope="module")
def function_url(db_url: str, sim: object) -> Iterator[Callable[[str], str]]:
    """`function_url("session-reconcile")` -> base URL of that function, served the way its container runs it."""
    from streamspace.local.gateway import load_function_app
    from streamspace.local.server import BackgroundServer

    servers: dict[str, BackgroundServer] = {}

    def url(name: str) -> str:
        if name not in servers:
            servers[name] = BackgroundServer(load_function_app(name)).start()
        return servers[name].url

    yield url
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module")
def firefox(function_url: Callable[[str], str]) -> dict[str, Any]:
    """The module's `firefox` Template (reconcile_helpers.template_manifest), created and delivered to
    template-reconcile, so Sessions of the module can resolve it."""
    return add_template(function_url("template-reconcile"), "firefox")
