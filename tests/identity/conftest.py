"""Identity tests: real Postgres, the auth and users functions over real HTTP.

Passwords are hashed with PASSWORD_HASH_PROFILE=test (minimal argon2id cost; refused in
production) so that creating users stays fast.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.conftest import make_user, token_for  # noqa: F401 - re-exported to the identity tests

_addresses = itertools.count(1)


def fresh_ip() -> str:
    """A client address no other test used: the per-address login limit is shared by the module."""
    n = next(_addresses)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def login(url: str, username: str, password: str, ip: str | None = None) -> requests.Response:
    return requests.post(f"{url}/api/v1/auth/login", json={"username": username, "password": password},
                         headers={"X-Forwarded-For": ip or fresh_ip()}, timeout=60)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def audit_rows(action: str, target: str | None = None) -> list[dict[str, Any]]:
    from streamspace.db import fetch_all

    return fetch_all("SELECT * FROM audit_log WHERE action = %s AND (%s::text IS NULL OR target = %s) ORDER BY id",
                     (action, target, target))


@pytest.fixture(scope="module")
def url(serve) -> str:
    """The auth and users functions behind one real HTTP port, routed as in production."""
    return serve("auth", "users")


@pytest.fixture(scope="module")
def admin(url: str) -> Iterator[dict[str, Any]]:
    """A logged-in admin: {id, username, password, token, refreshToken, headers}."""
    user_id = make_user("root-admin", role="admin", password="root-password")
    body = login(url, "root-admin", "root-password").json()
    yield {"id": user_id, "username": "root-admin", "password": "root-password", "token": body["token"],
           "refreshToken": body["refreshToken"], "headers": bearer(body["token"])}
