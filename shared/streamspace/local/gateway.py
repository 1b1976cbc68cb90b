"""All HTTP functions behind one port, dispatched by the production path routing.

Each function is loaded with functions-framework's own `create_app`, exactly as its container
runs it, and called in-process as a WSGI app.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from streamspace.local.routing import route_path

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def load_function_app(name: str) -> WsgiApp:
    from functions_framework import create_app

    from streamspace.functions import by_name

    info = by_name(name)
    return create_app(target=info.target, source=str(info.source))  # type: ignore[no-any-return]


class Gateway:
    def __init__(self, apps: dict[str, WsgiApp]) -> None:
        self.apps = apps

    @classmethod
    def for_http_functions(cls) -> Gateway:
        from streamspace.functions import discover

        return cls({info.name: load_function_app(info.name) for info in discover() if info.kind == "http"})

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        # /metrics is not routed publicly (HTTPRoute); locally every function shares one process and
        # one registry, so any function's /metrics serves them all, e.g. to compose's Prometheus.
        function = "metrics" if path == "/metrics" else route_path(path)
        app = self.apps.get(function) if function else None
        if app is None:
            body = json.dumps({"error": "not found", "message": f"no route for {environ.get('PATH_INFO')}"}).encode()
            start_response("404 Not Found", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        return app(environ, start_response)
