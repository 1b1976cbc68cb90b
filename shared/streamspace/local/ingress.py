"""SIMULATED ingress controller for session hosts (`make run` and tests, never a cluster).

It does what the ingress controller (Traefik, or ingress-nginx with INGRESS_CONTROLLER=nginx) does
in a cluster with each session's Ingress: match the request's Host
against the Ingress rules (read from the cluster, as a controller watches them), ask the
forward-auth check the Ingress names before EVERY request (WebSocket upgrades included), then
route by path: `/.streamspace/auth` (Exact) to auth-check, everything else to the session's
Service, which the simulated cluster answers with its stand-in desktop (streamspace.sim.desktops).

As Traefik with an untrusted entry point does, it never forwards what the client claims about the
request: X-Forwarded-* and X-Original-* are replaced, and X-Auth-Request-User only ever comes from
the check's answer (GHSA-5g4w-3vw9-478w is a proxy that trusted a client-set X-Forwarded-Host).
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from streamspace import kube
from streamspace.config import environment
from streamspace.reconcile.desired import NGINX_AUTH_URL, TRAEFIK_MIDDLEWARES
from streamspace.settings.effective import load_config

if TYPE_CHECKING:
    from streamspace.sim.desktops import SimDesktops

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
CHECK_PATH = "/api/v1/auth/session-check"
# Not copied on to the check's request (as Traefik's ForwardAuth does): they describe one connection.
_HOP_BY_HOP = frozenset({"HTTP_CONNECTION", "HTTP_UPGRADE", "HTTP_KEEP_ALIVE", "HTTP_PROXY_AUTHORIZATION",
                         "HTTP_PROXY_CONNECTION", "HTTP_TE", "HTTP_TRAILER", "HTTP_TRANSFER_ENCODING",
                         "HTTP_CONTENT_LENGTH"})
_CLIENT_CLAIMS = ("HTTP_X_FORWARDED_", "HTTP_X_ORIGINAL_", "HTTP_X_REAL_IP", "HTTP_X_AUTH_REQUEST_")


def _answer(start_response: Callable[..., Any], status: str, body: dict[str, Any]) -> list[bytes]:
    payload = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload))),
                            ("Cache-Control", "no-store")])
    return [payload]


class SessionIngress:
    def __init__(self, auth_check: WsgiApp, desktops: SimDesktops, namespace: str) -> None:
        self.auth_check = auth_check
        self.desktops = desktops
        self.namespace = namespace

    def rule_for(self, host: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(Ingress, rule) whose rule names `host` exactly, else None."""

        for ingress in kube.list_objects("Ingress", self.namespace):
            for rule in (ingress.get("spec") or {}).get("rules") or []:
                if rule.get("host") == host:
                    return ingress, rule
        return None

    def serve(self, environ: dict[str, Any], start_response: Callable[..., Any],
              found: tuple[dict[str, Any], dict[str, Any]]) -> Iterable[bytes]:
        """Answer a request whose host matched `found` (from `rule_for`)."""

        host_header = environ.get("HTTP_HOST") or ""
        ingress, rule = found
        clean = {k: v for k, v in environ.items() if not k.startswith(_CLIENT_CLAIMS)}
        clean.update({"HTTP_X_FORWARDED_HOST": host_header, "HTTP_X_FORWARDED_PROTO": environ.get("wsgi.url_scheme",
                                                                                                  "http"),
                      "HTTP_X_FORWARDED_FOR": environ.get("REMOTE_ADDR", "")})
        annotations = (ingress.get("metadata") or {}).get("annotations") or {}
        if annotations.get(TRAEFIK_MIDDLEWARES) or annotations.get(NGINX_AUTH_URL):
            status, headers, body = self._forward_auth(clean)
            if not status.startswith("200"):
                start_response(status, [(k, v) for k, v in headers if k.lower() in ("content-type", "content-length",
                                                                                     "www-authenticate")])
                return [body]
            user = next((v for k, v in headers if k.lower() == "x-auth-request-user"), None)
            if user is not None:
                clean["HTTP_X_AUTH_REQUEST_USER"] = user
        service = self._backend(rule, clean.get("PATH_INFO") or "/")
        if service is None:
            return _answer(start_response, "404 Not Found", {"error": "not found", "message": "no path matches"})
        if service == self._auth_service():
            return self.auth_check(clean, start_response)
        backend = self.desktops.backend(self.namespace, service)
        if backend is None:
            return _answer(start_response, "503 Service Unavailable",
                           {"error": "unavailable", "message": "the session has no ready pod (yet)"})
        return backend(clean, start_response)

    def _auth_service(self) -> str:
        return load_config().auth_service

    @staticmethod
    def _backend(rule: dict[str, Any], path: str) -> str | None:
        """The Service of the best path match: Exact first, then the longest Prefix (as Kubernetes says)."""
        paths = ((rule.get("http") or {}).get("paths")) or []
        for entry in paths:
            if entry.get("pathType") == "Exact" and entry.get("path") == path:
                return str(entry["backend"]["service"]["name"])
        best: tuple[int, str] | None = None
        for entry in paths:
            prefix = str(entry.get("path") or "/")
            if entry.get("pathType") == "Prefix" and (prefix == "/" or path == prefix.rstrip("/")
                                                      or path.startswith(prefix.rstrip("/") + "/")):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), str(entry["backend"]["service"]["name"]))
        return best[1] if best else None

    def _forward_auth(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        """The controller's forward-auth request: GET the check with the request's headers and the
        ones the configured controller (INGRESS_CONTROLLER) adds."""

        query = environ.get("QUERY_STRING") or ""
        sub = {k: v for k, v in environ.items() if k.startswith("HTTP_") and k not in _HOP_BY_HOP}
        sub.update({
            "REQUEST_METHOD": "GET", "PATH_INFO": CHECK_PATH, "QUERY_STRING": "", "SCRIPT_NAME": "",
            "SERVER_NAME": environ.get("SERVER_NAME", "localhost"), "SERVER_PORT": environ.get("SERVER_PORT", "80"),
            "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": environ.get("REMOTE_ADDR", ""),
            "wsgi.version": (1, 0), "wsgi.url_scheme": environ.get("wsgi.url_scheme", "http"),
            "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
            "wsgi.multiprocess": False, "wsgi.run_once": False,
        })
        uri = (environ.get("PATH_INFO") or "/") + (f"?{query}" if query else "")
        if environment().ingress_controller == "nginx":  # ingress-nginx's auth location (nginx.tmpl)
            sub["HTTP_X_ORIGINAL_URL"] = f"{sub['wsgi.url_scheme']}://{environ.get('HTTP_HOST', '')}{uri}"
            sub["HTTP_X_ORIGINAL_METHOD"] = environ.get("REQUEST_METHOD", "GET")
        else:  # Traefik's ForwardAuth (forward.go, writeHeader)
            sub["HTTP_X_FORWARDED_METHOD"] = environ.get("REQUEST_METHOD", "GET")
            sub["HTTP_X_FORWARDED_URI"] = uri
        captured: dict[str, Any] = {}

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = status, headers
            return lambda _data: None

        chunks = self.auth_check(sub, start)
        try:
            body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return captured["status"], captured["headers"], body
