"""Live session updates pushed (issue 10, section 5): Server-Sent Events at /api/v1/events/sessions
and the same stream as a WebSocket at /api/v1/ws/sessions, owner-scoped, bounded in time and in
the number of worker threads they hold. Real HTTP, real Postgres LISTEN/NOTIFY."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import websocket

from tests.conftest import environment

from .conftest import World, put_template


def _no_stream_left(ceiling: float = 180.0) -> None:
    """Wait until earlier streams in this process ended by themselves: this module's own (within
    LIVE_STREAM_SECONDS) and an earlier module's (a browser's whose page is gone holds its slot until
    a keepalive write finds the client gone). These tests count slots from zero."""
    from streamspace.sessions.live import slots

    assert slots.wait_all_given_back(ceiling), f"{slots.taken} live streams of an earlier test never ended"


@pytest.fixture(scope="module", autouse=True)
def short_streams(world: World) -> Iterator[None]:
    _no_stream_left()
    with environment(LIVE_STREAM_SECONDS="8s", LIVE_STREAMS="3"):
        put_template("firefox", cpu="100m", memory="128Mi")
        yield


class EventReader:
    """An EventSource stand-in: reads a text/event-stream on a thread, one parsed message at a time."""

    def __init__(self, url: str, token: str) -> None:
        self.response = requests.get(url, params={"token": token}, stream=True, timeout=60)
        self.messages: queue.Queue[Any] = queue.Queue()
        self.retry: list[int] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            self._parse()
        except (requests.RequestException, AttributeError, ValueError):  # closed by the test
            pass
        self.messages.put(None)  # the stream ended

    def _parse(self) -> None:
        data: list[str] = []
        for line in self.response.iter_lines(decode_unicode=True):
            if line.startswith("retry:"):
                self.retry.append(int(line.split(":", 1)[1]))
            elif line.startswith("data:"):
                data.append(line.split(":", 1)[1].strip())
            elif line == "" and data:
                self.messages.put(json.loads("\n".join(data)))
                data = []

    def next(self, timeout: float = 30.0) -> Any:
        return self.messages.get(timeout=timeout)

    def until(self, predicate: Any, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            message = self.next(max(0.1, deadline - time.monotonic()))
            assert message is not None, "the stream ended before the expected update"
            if predicate(message):
                return message

    def close(self) -> None:
        self.response.close()


def token_of(client: Any) -> str:
    return str(client.http.headers["Authorization"].split(" ", 1)[1])


def launch(client: Any) -> str:
    answer = client.post("/api/v1/sessions", json={"template": "firefox"})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["name"])


def names(message: dict[str, Any]) -> set[str]:
    return {s["name"] for s in message["sessions"]}


def test_a_change_is_pushed_to_its_owner_only(world: World) -> None:
    alice_stream = EventReader(world.base + "/api/v1/events/sessions", token_of(world.alice))
    try:
        first = alice_stream.next()
        assert first["type"] == "sessions_update" and first["count"] == len(first["sessions"])
        assert alice_stream.retry and alice_stream.retry[0] <= 1000
        bobs = launch(world.bob)
        alices = launch(world.alice)
        update = alice_stream.until(lambda m: alices in names(m))
        assert bobs not in names(update)
        assert all(s["user"] == "alice" for s in update["sessions"])
    finally:
        alice_stream.close()


def test_an_admin_sees_everyones_changes(world: World) -> None:
    admin_stream = EventReader(world.base + "/api/v1/events/sessions", token_of(world.admin))
    try:
        admin_stream.next()
        bobs = launch(world.bob)
        assert bobs in names(admin_stream.until(lambda m: bobs in names(m)))
        # a change of state reaches the stream too, not only new sessions
        assert world.bob.patch(f"/api/v1/sessions/{bobs}", json={"state": "hibernated"}).status_code == 200
        admin_stream.until(lambda m: any(s["name"] == bobs and s["state"] == "hibernated" for s in m["sessions"]))
    finally:
        admin_stream.close()


def test_the_stream_closes_cleanly_after_its_time(world: World) -> None:
    stream = EventReader(world.base + "/api/v1/events/sessions", token_of(world.alice))
    try:
        assert stream.next()["type"] == "sessions_update"
        while (message := stream.next(timeout=60)) is not None:  # keep-alives and updates until the end
            assert message["type"] == "sessions_update"
        stream.thread.join(timeout=10)
        assert not stream.thread.is_alive()
    finally:
        stream.close()


def test_live_updates_need_a_valid_token(world: World) -> None:
    with requests.get(world.base + "/api/v1/events/sessions", headers=world.alice.http.headers, stream=True,
                      timeout=30) as by_header:  # a bearer header works too
        assert by_header.status_code == 200
        assert by_header.headers["Content-Type"].startswith("text/event-stream")
    assert requests.get(world.base + "/api/v1/events/sessions", timeout=10).status_code == 401
    assert requests.get(world.base + "/api/v1/events/sessions", params={"token": "forged"},
                        timeout=10).status_code == 401
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(world.base.replace("http", "ws") + "/api/v1/ws/sessions?token=forged", timeout=10)
    assert refused.value.status_code == 401


def ws_url(world: World, client: Any) -> str:
    return world.base.replace("http://", "ws://") + "/api/v1/ws/sessions?token=" + token_of(client)


def test_the_websocket_carries_the_same_messages(world: World) -> None:
    ws = websocket.create_connection(ws_url(world, world.alice), timeout=30)
    try:
        first = json.loads(ws.recv())
        assert first["type"] == "sessions_update" and set(first) == {"type", "sessions", "count", "timestamp"}
        alices = launch(world.alice)
        while alices not in names(message := json.loads(ws.recv())):
            pass
        assert all(s["user"] == "alice" for s in message["sessions"])
    finally:
        ws.close()
    # a plain GET is told to upgrade
    plain = requests.get(world.base + "/api/v1/ws/sessions", params={"token": token_of(world.alice)}, timeout=10)
    assert plain.status_code == 400 and plain.json()["error"] == "websocket required"


def test_streams_past_the_per_process_limit_fall_back_to_polling(world: World) -> None:
    """LIVE_STREAMS=3 here: the streams' threads are bounded; a fourth client is served a snapshot
    and told to retry later (SSE) or refused with 503 and Retry-After (WebSocket)."""
    _no_stream_left()
    held = [EventReader(world.base + "/api/v1/events/sessions", token_of(world.alice)) for _ in range(3)]
    try:
        for stream in held:
            stream.next()
        extra = EventReader(world.base + "/api/v1/events/sessions", token_of(world.alice))
        assert extra.next()["type"] == "sessions_update"
        assert extra.next() is None  # ended at once
        assert extra.retry == [5000]
        with pytest.raises(websocket.WebSocketBadStatusException) as busy:
            websocket.create_connection(ws_url(world, world.alice), timeout=10)
        assert busy.value.status_code == 503
    finally:
        for stream in held:
            stream.close()


def test_a_stream_ends_when_its_login_is_revoked(world: World) -> None:
    from streamspace.auth.tokens import issue_access_token
    from streamspace.db import execute, fetch_one

    family = fetch_one("INSERT INTO token_families (user_id) VALUES (%s) RETURNING id::text AS id",
                       (world.alice.user_id,))["id"]
    token, _ = issue_access_token(user_id=world.alice.user_id, username="alice", role="user", groups=[],
                                  family_id=family)
    _no_stream_left()
    stream = EventReader(world.base + "/api/v1/events/sessions", token)
    try:
        stream.next()
        assert stream.retry == [1000]  # a live stream, not the busy fallback
        execute("UPDATE token_families SET revoked_at = now() WHERE id = %s", (family,))  # what logout does
        launch(world.alice)
        assert stream.next() is None  # the change woke the stream, which ended instead of sending it
    finally:
        stream.close()
