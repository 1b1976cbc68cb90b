"""All HTTP functions behind one port, dispatched by the production path routing.

Each function is loaded with functions-framework's own `create_app`, exactly as its container
runs it, and called in-process as a WSGI app. With a simulated cluster, requests for a session
host (`<session>.localhost:8000`) go to the simulated ingress (streamspace.local.ingress) instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from streamspace.config import environment
from streamspace.functions import by_name, discover
from streamspace.local.ingress import SessionIngress
from streamspace.local.routing import route_path
from streamspace.reconcile.authcheck import plain_host
from streamspace.settings.service import INGRESS_DOMAIN, platform_settings

if TYPE_CHECKING:
    from streamspace.local.ingress import SessionIngress

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def load_function_app(name: str) -> WsgiApp:
    from functions_framework import create_app


    info = by_name(name)
    return create_app(target=info.target, source=str(info.source))  # type: ignore[no-any-return]


def _may_be_session_host(host: str) -> bool:
    """A name with a dot that is not an IP literal (the API itself is reached as 127.0.0.1 or localhost)."""
    import ipaddress


    name = plain_host(host)
    if "." not in name:
        return False
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return True
    return False


class Gateway:
    def __init__(self, apps: dict[str, WsgiApp], ingress: SessionIngress | None = None) -> None:
        self.apps = apps
        self.ingress = ingress

    @classmethod
    def for_http_functions(cls, desktops: Any = None) -> Gateway:
        """Every HTTP function; with `desktops` (a simulated cluster's SimDesktops), session hosts too."""

        apps = {info.name: load_function_app(info.name) for info in discover() if info.kind == "http"}
        ingress = (SessionIngress(apps["auth-check"], desktops, environment().sessions_namespace)
                   if desktops is not None else None)
        return cls(apps, ingress)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        host = environ.get("HTTP_HOST") or ""
        if self.ingress is not None and _may_be_session_host(host):
            found = self.ingress.rule_for(plain_host(host))
            if found is not None:
                return self.ingress.serve(environ, start_response, found)
            if _under_ingress_domain(plain_host(host)):
                # A session host whose Ingress is gone: an ingress controller has no rule for it
                # either (its default backend answers 404); it never reaches the API's routes.
                return _not_found(start_response, f"no session is served at {plain_host(host)}")
        path = environ.get("PATH_INFO", "/")
        # /metrics is not routed publicly (HTTPRoute); locally every function shares one process and
        # one registry, so any function's /metrics serves them all, e.g. to compose's Prometheus.
        function = "metrics" if path == "/metrics" else route_path(path)
        app = self.apps.get(function) if function else None
        if app is None:
            return _not_found(start_response, f"no route for {environ.get('PATH_INFO')}")
        return app(environ, start_response)


def _not_found(start_response: Callable[..., Any], message: str) -> list[bytes]:
    body = json.dumps({"error": "not found", "message": message}).encode()
    start_response("404 Not Found", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _under_ingress_domain(name: str) -> bool:
    return name.endswith("." + str(platform_settings()[INGRESS_DOMAIN]))


def serve_with_gunicorn(host: str, port: int) -> None:
    """Every HTTP function behind one port under gunicorn, exactly as functions-framework serves a
    function in its image (`python -m streamspace.local.gateway HOST PORT`)."""
    from functions_framework._http.gunicorn import GunicornApplication

    GunicornApplication(Gateway.for_http_functions(), host, port, False).run()


if __name__ == "__main__":
    import sys

    serve_with_gunicorn(sys.argv[1], int(sys.argv[2]))
