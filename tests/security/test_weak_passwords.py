"""Attack: an account whose password is guessable before any throttling matters."""

from __future__ import annotations

import pytest

from tests.conftest import client_for


@pytest.fixture(scope="module")
def admin(serve):
    base = serve("auth", "users")
    return client_for(base, "policy-admin", role="admin")


@pytest.mark.parametrize("password", [" " * 8, "\t \u00a0 \n   ", "weak-victim", "password123", "Password1",
                                      "iloveyou", "qwertyuiop"])
def test_whitespace_the_username_and_common_passwords_are_refused(admin, password):
    answer = admin.post("/api/v1/users", json={"username": "weak-victim", "email": "weak@example.com",
                                               "password": password})
    assert answer.status_code == 400, (password, answer.text)
    assert answer.json()["error"] == "invalid password"


def test_a_long_uncommon_password_is_accepted_and_the_policy_holds_on_change(admin):
    made = admin.post("/api/v1/users", json={"username": "strong-one", "email": "strong@example.com",
                                             "password": "plum-harbour-violin-42"})
    assert made.status_code == 201, made.text
    changed = admin.patch(f"/api/v1/users/{made.json()['id']}", json={"password": "strong-one"})
    assert changed.status_code == 400 and changed.json()["error"] == "invalid password"
