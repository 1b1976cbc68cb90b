"""Attack: pick a username that is another user's Kubernetes label, and share their home volume."""

from __future__ import annotations

import pytest

from streamspace.domain.names import home_claim_name, user_label
from tests.conftest import client_for


def test_a_username_equal_to_another_users_label_gets_its_own_home_volume():
    victim = "a.b"
    attacker = user_label(victim)  # "a-b-2e7336dc8e": itself a valid username
    assert attacker != victim
    assert user_label(attacker) != user_label(victim)
    assert home_claim_name(attacker) != home_claim_name(victim)
    # Existing users keep their labels (and so their volumes): plain names and hashed ones alike.
    assert user_label("alice") == "alice" and home_claim_name("alice") == "home-alice"
    assert user_label("a.b") == "a-b-2e7336dc8e"


@pytest.mark.parametrize("names", [("a.b", "a_b", "a-b"), ("x.y-0123456789", "x-y-0123456789"), ("Alice", "alice")])
def test_labels_are_injective(names):
    labels = [user_label(name) for name in names]
    assert len(set(labels)) == len(labels), labels


def test_owner_lookups_by_label_cannot_confuse_the_two_users(serve, sim):
    from streamspace import kube
    from streamspace.db import fetch_one

    base = serve("sessions", "users")
    client_for(base, "c.d")  # the victim
    attacker = client_for(base, user_label("c.d"))
    # A Session applied with kubectl for the victim (spec.user is the victim's label) ...
    kube.create({"apiVersion": "stream.space/v1alpha1", "kind": "Session",
                 "metadata": {"name": "cd-by-kubectl", "namespace": "streamspace"},
                 "spec": {"user": user_label("c.d"), "template": "firefox", "state": "running"}})
    # ... is not the attacker's, whose username spells that label.
    assert attacker.get("/api/v1/sessions/cd-by-kubectl").status_code == 404
    row = fetch_one("SELECT user_id FROM sessions WHERE name = 'cd-by-kubectl'")
    assert row is None or row["user_id"] != attacker.user_id


# Two usernames whose hashed labels collide (a 40-bit hash: found by a search over separators, which
# normalise alike; kept here as data). Only such a pair could share a home volume.
COLLIDING = ("a.b.c.d.e.f.g-h-i._j-k_.l_m.n_o", "a.b.c.d.e.f-g._h.i_.j._k-l._m_n_o")


def test_a_username_whose_label_collides_with_another_users_is_refused(serve):
    from streamspace.db import fetch_one

    first, second = COLLIDING
    assert first != second and user_label(first) == user_label(second)
    base = serve("users")
    admin = client_for(base, "label-admin", role="admin")
    made = admin.post("/api/v1/users", json={"username": first, "email": "first@example.com",
                                                 "password": "a long unusual phrase 1"})
    assert made.status_code == 201, made.text
    refused = admin.post("/api/v1/users", json={"username": second, "email": "second@example.com",
                                                    "password": "a long unusual phrase 2"})
    assert refused.status_code == 409 and refused.json()["error"] == "username taken", refused.text
    assert fetch_one("SELECT count(*) AS n FROM users WHERE username = %s", (second,))["n"] == 0
