"""Catalog test fixtures: file:// repositories allowed, a recording K_SINK, catalog-sync over HTTP."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def set_env(**values: str | None) -> dict[str, str | None]:
    """Set (or unset, with None) environment variables, forget cached settings; returns the old values."""
    from streamspace.config import reset_environment

    old = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    reset_environment()
    return old


@pytest.fixture(scope="module", autouse=True)
def catalog_env() -> Iterator[None]:
    """CATALOG_ALLOW_FILE_URLS=true for the catalog test modules (their repositories are file:// URLs)."""
    old = set_env(CATALOG_ALLOW_FILE_URLS="true", CATALOG_ALLOW_PRIVATE_URLS=None)
    yield
    set_env(**old)


class Sink:
    """A recording broker: K_SINK points here; tests read what the functions emitted."""

    def __init__(self) -> None:
        self.events: list[tuple[dict[str, str], bytes]] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
                   if key.startswith("HTTP_")}
        headers["content-type"] = environ.get("CONTENT_TYPE", "")
        with self._lock:
            self.events.append((headers, body))
        start_response("202 Accepted", [("Content-Length", "0")])
        return [b""]

    def take(self) -> list[tuple[dict[str, str], bytes]]:
        with self._lock:
            events, self.events = self.events, []
        return events


@pytest.fixture(scope="module")
def sink(db_url: str) -> Iterator[Sink]:
    from streamspace.local.server import BackgroundServer

    recorder = Sink()
    server = BackgroundServer(recorder).start()
    old = set_env(K_SINK=server.url + "/")
    yield recorder
    set_env(**old)
    server.stop()


@pytest.fixture(scope="module")
def catalog_sync(db_url: str) -> Iterator[str]:
    """The catalog-sync CloudEvent function, loaded as its container runs it, over real HTTP."""
    from functions_framework import create_app

    from streamspace.local.server import BackgroundServer

    app = create_app(target="handle", source=str(ROOT / "functions" / "catalog-sync" / "main.py"),
                     signature_type="cloudevent")
    server = BackgroundServer(app).start()
    yield server.url
    server.stop()


def deliver(url: str, headers: dict[str, str], body: bytes) -> requests.Response:
    """POST one binary-mode CloudEvent, exactly as the broker delivers it."""
    wanted = {k: v for k, v in headers.items() if k.lower().startswith("ce-") or k.lower() == "content-type"}
    return requests.post(url + "/", headers=wanted, data=body, timeout=120)


def deliver_recorded(url: str, sink: Sink) -> list[requests.Response]:
    """Forward what the functions emitted to catalog-sync (the broker's job)."""
    return [deliver(url, headers, body) for headers, body in sink.take()]


def ping(url: str) -> requests.Response:
    from streamspace.events.apiserver import ping_event

    headers, body = ping_event("streamspace", "catalog-sync", '{"task":"catalog-sync"}')
    return deliver(url, headers, body)


def sync_requested(url: str, data: Any) -> requests.Response:
    from streamspace.events import SYNC_REQUESTED_TYPE, binary_headers

    headers = binary_headers(SYNC_REQUESTED_TYPE, "/streamspace/catalog")
    return deliver(url, headers, json.dumps(data).encode())


@pytest.fixture(scope="module")
def admin(db_url: str) -> dict[str, str]:
    from tests.conftest import make_user, token_for

    user_id = make_user("catalog-admin", role="admin")
    return {"Authorization": f"Bearer {token_for(user_id, 'catalog-admin', 'admin')}"}


@pytest.fixture(scope="module")
def user(db_url: str) -> dict[str, str]:
    from tests.conftest import make_user, token_for

    user_id = make_user("catalog-user")
    return {"Authorization": f"Bearer {token_for(user_id, 'catalog-user')}"}


def one(sql: str, params: Any = None) -> dict[str, Any]:
    """fetch_one that insists on a row."""
    from streamspace.db import fetch_one

    row = fetch_one(sql, params)
    assert row is not None, sql
    return row
