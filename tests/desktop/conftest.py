"""The whole local system in-process (what `make run` starts: functions, relay, reconcilers, the
simulated cluster and its simulated ingress for session hosts), on this module's database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import environment, make_user
from tests.sim.sim_helpers import eventually

NS = "streamspace-sessions"  # where `make run` puts Sessions (knative/sessions), apart from the control plane


@pytest.fixture(scope="module")
def stack(db_url: str) -> Iterator[Any]:
    from streamspace import kube
    from streamspace.local.runner import LocalStack
    from tests.reconcile.reconcile_helpers import template_manifest

    # The stack points these at its own simulated cluster and event broker: give them back after.
    kept = {name: os.environ.get(name) for name in ("KUBECONFIG", "K_SINK", "DATABASE_URL", "SESSIONS_NAMESPACE")}
    with environment(**kept):
        running = LocalStack(api_port=0, cluster="sim", kubelet_delay=0.0, schedule=False,
                             announce=lambda _line: None).start()
        try:
            assert os.environ["SESSIONS_NAMESPACE"] == NS
            template = template_manifest("firefox")
            template["metadata"]["namespace"] = NS
            kube.create(template)
            yield running
        finally:
            running.stop()
    kube.reset_client()


@dataclass
class Person:
    base: str
    username: str
    user_id: str
    password: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self.base + path, headers=self.auth, timeout=30, **kw)

    def post(self, path: str, json: Any = None) -> requests.Response:
        return requests.post(self.base + path, json=json, headers=self.auth, timeout=30)

    def patch(self, path: str, json: Any = None) -> requests.Response:
        return requests.patch(self.base + path, json=json, headers=self.auth, timeout=30)


def log_in(base: str, username: str, role: str = "user") -> Person:
    """A new user, logged in through the auth function (a real login: its token carries a login family)."""
    password = "password-" + username
    user_id = make_user(username, role=role, password=password)
    answer = requests.post(base + "/api/v1/auth/login", json={"username": username, "password": password}, timeout=30)
    assert answer.status_code == 200, answer.text
    return Person(base, username, user_id, password, answer.json()["token"])


def launch(person: Person) -> str:
    """A session of `person`, Running in the simulated cluster (reconciled through the local relay)."""
    created = person.post("/api/v1/sessions", {"template": "firefox"})
    assert created.status_code == 201, created.text
    name = created.json()["name"]
    eventually(lambda: person.get(f"/api/v1/sessions/{name}").json()["status"]["phase"] == "Running",
               what=f"session {name} to be Running")
    return str(name)


def open_url(person: Person, session: str) -> str:
    answer = person.get(f"/api/v1/sessions/{session}/connect")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["openUrl"])


def on_host(base: str, url: str, cookie: str | None = None, **headers: str) -> requests.Response:
    """GET `url` (on a session host) the way a browser would, but connecting to the local gateway:
    *.localhost names resolve to the loopback address in browsers, not necessarily here."""
    parts = urlsplit(url)
    sent = {"Host": parts.netloc, **headers}
    if cookie is not None:
        sent["Cookie"] = f"streamspace_desktop={cookie}"
    target = base + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return requests.get(target, headers=sent, timeout=30, allow_redirects=False)


def redeem(base: str, url: str) -> str:
    """Follow an openUrl; returns the session host's cookie value."""
    answer = on_host(base, url)
    assert answer.status_code == 303, answer.text
    assert answer.headers["Location"] == "/"
    value = answer.headers["Set-Cookie"].split(";", 1)[0]
    name, _, cookie = value.partition("=")
    assert name == "streamspace_desktop"
    return cookie


def host_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/"
