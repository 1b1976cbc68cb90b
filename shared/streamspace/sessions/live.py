"""Live session updates, pushed: `GET /api/v1/events/sessions` (Server-Sent Events) and
`GET /api/v1/ws/sessions` (WebSocket, the v0.2 contract), both owner-scoped.

Every change of a session's index row NOTIFYs `session_changes` (migration 0009). Each process
keeps ONE listening connection (`ChangeFeed`), which wakes the streams of the users concerned (the
owner's, and every admin's); a woken stream reads the caller's sessions again and sends a
`sessions_update` message when they differ from what it last sent.

Bounded, so a function instance stays a well-behaved Knative citizen:
- a stream lasts at most LIVE_STREAM_SECONDS (default 120 s), then ends cleanly (SSE: the
  response ends and EventSource reconnects after `retry:`; WebSocket: close code 1001), so Knative
  can drain and scale the instance down; before each update it checks the caller's login again and
  ends when it was logged out or the user disabled;
- a stream holds a worker thread for its whole life (gunicorn gthread: THREADS per process), so a
  process serves at most LIVE_STREAMS streams at once (default half of THREADS), leaving the other
  threads for ordinary requests. Past that, SSE answers one snapshot with `retry:` (the client
  polls until a slot frees) and the WebSocket answers 503 with Retry-After;
- an idle stream sends a comment (SSE) or a ping (WebSocket) every 15 s, so proxies keep it open;
  that is also when a stream whose client went away notices it and frees its slot.

The listening connection is opened from DATABASE_URL directly, outside the pool: LISTEN needs a
session of its own, so behind PgBouncer it must point at a session-mode pool (transaction mode
delivers no notifications).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streamspace.auth.principal import still_standing
from streamspace.config import environment
from streamspace.db import connect, database_url
from streamspace.domain.errors import Invalid, Unavailable
from streamspace.encoding import dumps
from streamspace.sessions.listing import sessions_update
from streamspace.websocket import accept, close_quietly, finished_response, is_upgrade

if TYPE_CHECKING:
    from streamspace.auth.principal import Principal

log = logging.getLogger("streamspace.sessions.live")

CHANNEL = "session_changes"
KEEPALIVE_SECONDS = 15.0
RECONNECT_MS = 1000  # SSE `retry:` after a stream ended on time: reconnect at once (almost)
BUSY_RETRY_MS = 5000  # SSE `retry:` when every stream slot is taken: poll
_LISTEN_RETRY_SECONDS = 1.0


@dataclass(eq=False)
class Subscriber:
    """One open stream: woken by changes of `user_id`'s sessions (None: everyone's, an admin)."""

    user_id: str | None
    _event: threading.Event = field(default_factory=threading.Event)

    def offer(self, owner_id: str | None) -> None:
        if self.user_id is None or owner_id == self.user_id:
            self._event.set()

    def wake(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        """True when a change came (and clears it), False after `timeout` seconds without one."""
        if not self._event.wait(timeout):
            return False
        self._event.clear()
        return True


class ChangeFeed:
    """The process's one LISTEN connection, started with the first subscriber, fanned out to all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: set[Subscriber] = set()
        self._thread: threading.Thread | None = None
        self._listening = threading.Event()

    def subscribe(self, user_id: str | None) -> Subscriber:
        subscriber = Subscriber(user_id)
        with self._lock:
            self._subscribers.add(subscriber)
            if self._thread is None or not self._thread.is_alive():
                self._listening.clear()
                self._thread = threading.Thread(target=self._run, name="session-changes", daemon=True)
                self._thread.start()
        # A change committed before LISTEN took effect would be missed: streams start with a
        # snapshot read after this returns, so wait (briefly) until the feed listens.
        self._listening.wait(timeout=5)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(subscriber)

    def _targets(self) -> list[Subscriber]:
        with self._lock:
            return list(self._subscribers)

    def _run(self) -> None:
        while self._targets():
            try:
                url = database_url()
                with connect(url, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    if self._listening.is_set():
                        for subscriber in self._targets():  # reconnected: changes may have been missed
                            subscriber.wake()
                    self._listening.set()
                    # Listen where the process's database is now: a process whose configured
                    # database changed (tests give each module its own) would otherwise keep
                    # listening to the old one while an earlier stream keeps the feed alive.
                    while self._targets() and database_url() == url:
                        for payload in conn.notifications(timeout=1.0):
                            self._dispatch(payload)
            except Exception:  # noqa: BLE001 - the feed must outlive a database restart
                log.warning("session change feed lost its connection; reconnecting", exc_info=True)
                time.sleep(_LISTEN_RETRY_SECONDS)
        with self._lock:
            self._thread = None

    def _dispatch(self, payload: str) -> None:
        try:
            owner = json.loads(payload).get("userId")
        except ValueError:
            return
        for subscriber in self._targets():
            subscriber.offer(owner)


_feed = ChangeFeed()


class StreamSlots:
    """At most `limit` live streams per process (each holds a worker thread)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._open = 0

    def try_take(self) -> bool:
        with self._changed:
            if self._open >= environment().live_streams:
                return False
            self._open += 1
            return True

    @property
    def taken(self) -> int:
        with self._changed:
            return self._open

    def give_back(self) -> None:
        with self._changed:
            self._open -= 1
            self._changed.notify_all()

    def wait_all_given_back(self, timeout: float) -> bool:
        """Block until no stream holds a slot (True), or `timeout` seconds pass (False)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._open == 0, timeout)


slots = StreamSlots()


def _snapshot(caller: Principal) -> tuple[dict[str, Any], Any]:
    """(the contract's message, what is compared to decide whether to send it again)."""

    message = sessions_update(caller)
    return message, (message["sessions"], message["count"])


def _sse(message: dict[str, Any]) -> str:
    return f"event: message\ndata: {dumps(message).decode()}\n\n"


def updates(caller: Principal, seconds: float) -> Iterator[dict[str, Any] | None]:
    """The caller's sessions now, then again after every change of them, for `seconds`;
    None when KEEPALIVE_SECONDS passed without a change."""

    subscriber = _feed.subscribe(None if caller.is_admin else caller.user_id)
    try:
        message, seen = _snapshot(caller)
        yield message
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if not subscriber.wait(min(left, KEEPALIVE_SECONDS)):
                if deadline - time.monotonic() > 0:
                    yield None
                continue
            if not still_standing(caller):
                return  # logged out or disabled meanwhile: not one message more
            message, current = _snapshot(caller)
            if current != seen:
                seen = current
                yield message
    finally:
        _feed.unsubscribe(subscriber)


def event_stream(caller: Principal) -> str | Iterator[str]:
    """The SSE body: a stream of `sessions_update` messages, or, when every slot is taken, one
    snapshot and a slower `retry:`."""

    if not slots.try_take():
        return f"retry: {BUSY_RETRY_MS}\n" + _sse(_snapshot(caller)[0])

    def stream() -> Iterator[str]:
        try:
            yield f"retry: {RECONNECT_MS}\n\n"
            for message in updates(caller, environment().live_stream_seconds):
                yield ": keep-alive\n\n" if message is None else _sse(message)
        finally:
            slots.give_back()

    return stream()


def websocket_stream(caller: Principal, environ: dict[str, Any]) -> Any:
    """Serve the caller's updates on a WebSocket (the handshake is done here); returns the WSGI
    response to hand back once it closed."""
    from simple_websocket import ConnectionClosed


    if not is_upgrade(environ):
        raise Invalid("this is a WebSocket endpoint: send an upgrade request (or use /api/v1/events/sessions)",
                      error="websocket required")
    if not slots.try_take():
        raise Unavailable("too many live streams on this instance; retry shortly", error="busy",
                          retry_after=BUSY_RETRY_MS // 1000)
    try:
        ws = accept(environ, ping_interval=KEEPALIVE_SECONDS)
        try:
            for message in updates(caller, environment().live_stream_seconds):
                if not ws.connected:
                    break
                if message is not None:

                    ws.send(dumps(message).decode())
            close_quietly(ws, 1001, "stream time is up; reconnect")
        except ConnectionClosed:
            pass
        return finished_response(ws)
    finally:
        slots.give_back()
