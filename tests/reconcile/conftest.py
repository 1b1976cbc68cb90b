"""The reconcile functions served over real HTTP (functions-framework apps on a background server),
against the simulated API server and a real Postgres."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest


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
