"""WebSocket on the WSGI servers our functions run on (gunicorn's gthread workers under
functions-framework, werkzeug in `make run` and tests), with simple-websocket.

The connection takes over the request's socket and occupies the worker thread until it ends, so
every WebSocket route must bound its own lifetime (see streamspace.sessions.live).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import flask
    from simple_websocket import Server


def is_upgrade(environ: dict[str, Any]) -> bool:
    return (environ.get("HTTP_UPGRADE") or "").strip().lower() == "websocket" \
        and "upgrade" in (environ.get("HTTP_CONNECTION") or "").lower()


def accept(environ: dict[str, Any], ping_interval: float | None = None) -> Server:
    """Complete the handshake on this request's socket (raises when the server offers none)."""
    from simple_websocket import Server

    return Server(environ, ping_interval=ping_interval, max_message_size=64 * 1024)


def close_quietly(ws: Server, reason: int = 1000, message: str = "") -> None:
    from simple_websocket import ConnectionClosed

    try:
        ws.close(reason=reason, message=message)
    except (ConnectionClosed, OSError):
        pass


def finished_response(ws: Server) -> flask.Response:
    """What the WSGI app returns once the WebSocket is closed: nothing more may be written to the
    socket (gunicorn: stop the response iteration; werkzeug: its own write fails harmlessly)."""
    import flask

    class _Finished(flask.Response):
        def __call__(self, environ: Any, start_response: Any) -> Any:
            if ws.mode == "gunicorn":
                raise StopIteration()
            if ws.mode == "werkzeug":
                return super().__call__(environ, start_response)
            return []

    return _Finished()
