"""SIMULATED desktops: what a Running session's pod would serve, for `make run` and tests.

A session's Service selects its pod; when a Ready pod is behind it, `SimDesktops.backend` answers
for that Service with a stand-in page that says, in words, that it is simulated (no container
runs here), and with a WebSocket echo on any path, so browser upgrades can be tried end to end.
No ready pod: None (the ingress answers 503, as a real one does without endpoints).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from typing import Any

from .store import Store

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
LABEL = "SIMULATED desktop (StreamSpace test/demo harness: no container runs here)"


def _ready(pod: dict[str, Any]) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or [])


class SimDesktops:
    def __init__(self, store: Store) -> None:
        self.store = store

    def ready_pod(self, namespace: str, service: str) -> dict[str, Any] | None:
        """A Ready pod the Service selects (what its endpoints would list), else None."""
        with self.store.txn():
            svc = self.store.get(("", "services"), namespace, service)
            selector = ((svc or {}).get("spec") or {}).get("selector") or {}
            if not selector:
                return None
            for pod in self.store.items(("", "pods"), namespace):
                labels = pod["metadata"].get("labels") or {}
                if all(labels.get(k) == v for k, v in selector.items()) and _ready(pod):
                    return dict(pod)
        return None

    def backend(self, namespace: str, service: str) -> WsgiApp | None:
        pod = self.ready_pod(namespace, service)
        if pod is None:
            return None
        pod_name = str(pod["metadata"]["name"])
        session = str((pod["metadata"].get("labels") or {}).get("stream.space/session") or "")

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            from streamspace.websocket import is_upgrade

            if is_upgrade(environ):
                return _echo(environ, start_response)
            user = environ.get("HTTP_X_AUTH_REQUEST_USER", "")
            body = _PAGE.format(label=html.escape(LABEL), session=html.escape(session), pod=html.escape(pod_name),
                                user=html.escape(user)).encode()
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body))),
                                      ("X-StreamSpace-Simulated", "desktop"),
                                      ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")])
            return [body]

        return app


def _echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A WebSocket that sends back what it receives, until the client closes (or 5 idle minutes)."""
    from simple_websocket import ConnectionClosed

    from streamspace.websocket import accept, close_quietly, finished_response

    ws = accept(environ)
    try:
        ws.send(f"{LABEL}: echo")
        while True:
            message = ws.receive(timeout=300)
            if message is None:
                break
            ws.send(message)
    except ConnectionClosed:
        pass
    close_quietly(ws)
    return finished_response(ws)(environ, start_response)  # type: ignore[no-any-return]


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Simulated desktop {session}</title>
<style>body{{font-family:sans-serif;margin:3rem;background:#fff8e1}} strong{{color:#b71c1c}}</style></head>
<body><main>
<h1><strong>{label}</strong></h1>
<p>This stands in for the desktop of session <code>{session}</code> (pod <code>{pod}</code>), reached as
<code>{user}</code> through the same forward-auth check that guards a real desktop. On a cluster, the
session's Ingress sends you to the real desktop instead.</p>
</main></body></html>
"""
