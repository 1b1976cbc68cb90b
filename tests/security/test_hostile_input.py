"""Hostile input at the HTTP edge: NUL characters and deeply nested JSON must be refused with 400
(never a 500 from Postgres or a RecursionError), in bodies, queries and paths, on every function."""

from __future__ import annotations

import hashlib
import hmac

import pytest
import requests

from tests.conftest import client_for

DEEP = 5000  # deep enough to break a recursive parser or walker


@pytest.fixture(scope="module")
def world(serve, sim):
    base = serve("auth", "sessions", "users", "webhooks")
    return base, client_for(base, "nul-admin", role="admin"), client_for(base, "nul-user")


def test_nul_bytes_anywhere_in_a_request_are_refused_with_400(world):
    base, admin, user = world
    answers = {
        "login body": requests.post(base + "/api/v1/auth/login", json={"username": "a\u0000b", "password": "x" * 8},
                                    timeout=10),
        "session tags": user.post("/api/v1/sessions", json={"template": "firefox", "tags": ["a\u0000b"]}),
        "template query": user.get("/api/v1/sessions?template=a%00b"),
        "user email": admin.post("/api/v1/users", json={"username": "nul-new", "email": "a\u0000@example.com",
                                                        "password": "a-long-unusual-password"}),
        "users provider": admin.get("/api/v1/users?provider=a%00b"),
        "groups type": admin.get("/api/v1/groups?type=a%00b"),
        "sessions user": admin.get("/api/v1/sessions?user=a%00b"),
        "quota path": admin.get("/api/v1/admin/quotas/a%00b"),
        "key of a body": admin.post("/api/v1/users", json={"a\u0000": 1}),
    }
    assert {what: a.status_code for what, a in answers.items()} == {what: 400 for what in answers}


def test_deeply_nested_json_is_refused_with_400(world, setting):
    base, admin, user = world
    deep = ("[" * DEEP + "]" * DEEP).encode()
    nested = b'{"username": ' + deep + b', "password": "x"}'
    headers = {"Content-Type": "application/json"}
    answers = {
        "login": requests.post(base + "/api/v1/auth/login", data=nested, headers=headers, timeout=10),
        "refresh": requests.post(base + "/api/v1/auth/refresh", data=b'{"refreshToken": ' + deep + b"}",
                                 headers=headers, timeout=10),
        "sessions": user.post("/api/v1/sessions", data=b'{"template": "firefox", "tags": ' + deep + b"}",
                              headers=headers),
    }
    secret = "webhook-secret-for-security-tests"
    setting(WEBHOOK_SECRET=secret)
    body = b'{"repository": ' + deep + b"}"
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    answers["signed webhook"] = requests.post(base + "/webhooks/repository/sync", data=body, timeout=10,
                                              headers={**headers, "X-Hub-Signature-256": f"sha256={signature}"})
    assert {what: a.status_code for what, a in answers.items()} == {what: 400 for what in answers}
    # Ordinary nesting still parses (a Template body nests a handful of levels).
    assert requests.post(base + "/api/v1/auth/login", json={"username": "nobody", "password": "not-the-one"},
                         timeout=10).status_code == 401
