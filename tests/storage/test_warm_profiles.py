"""Warm desktops with persistent profiles (HOME_STORAGE=s3, issue 18), end to end on the parts we have:
template-reconcile makes the pool over real HTTP against the simulated API server; the real agent
(deploy/docker/profile_agent.py, its own process) runs as the pool pod's `profile-agent` container would,
with that container's settings, against the storage function, moto's S3 server and the embedded Postgres;
a launch through the sessions API claims the desktop, and session-reconcile hands the session's token to
that agent (the simulated kubelet's pod address is set to loopback, where the agent listens, as a node
would report the pod's own). Before the claim the agent holds nothing and can fetch nothing; after it,
the user's files are in the home and the Session is Running only once they are; a failed restore is
reported in words."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from streamspace import kube
from streamspace.local.server import unused_port
from tests.conftest import Client, client_for, environment
from tests.reconcile.reconcile_helpers import NS, deliver, live, template_manifest
from tests.storage.conftest import S3Store
from tests.storage.test_profiles import AGENT, agent, token

CLAIM_PORT = unused_port()


@pytest.fixture(scope="module")
def urls(db_url: str, s3_store: S3Store, sim: Any, serve: Callable[..., str]) -> Iterator[dict[str, str]]:
    from streamspace.local.gateway import load_function_app
    from streamspace.local.server import BackgroundServer

    with environment(HOME_STORAGE="s3", PROFILE_SAVE_GRACE="90s", PROFILE_CLAIM_PORT=str(CLAIM_PORT)):
        reconcile = BackgroundServer(load_function_app("session-reconcile")).start()
        templates = BackgroundServer(load_function_app("template-reconcile")).start()
        try:
            yield {"reconcile": reconcile.url, "templates": templates.url, "api": serve("sessions", "storage")}
        finally:
            reconcile.stop()
            templates.stop()


def pooled_desktop(urls: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """A new Template keeping one warm desktop: (its name, the desktop's pod), the pod's address set to
    loopback (where this test's agent listens)."""
    name = f"roam-{uuid.uuid4().hex[:6]}"
    template = kube.create(template_manifest(name, warmPool={"size": 1}))
    template.setdefault("kind", "Template")
    assert deliver(urls["templates"], "add", template) == 200
    (pod,) = kube.list_objects("Pod", NS, label_selector=f"app.kubernetes.io/name=streamspace-warm,"
                                                         f"stream.space/template={name}")
    pod["status"].update({"podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]})
    pod = kube.request("PUT", f"/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}/status", body=pod)
    return name, pod


class WarmAgent:
    """The pool pod's `profile-agent` container as the kubelet runs it: its environment (POD_UID from the
    downward API; the storage function's address is this test's), the home an empty folder."""

    def __init__(self, urls: dict[str, str], pod: dict[str, Any], home: Path) -> None:
        container = next(c for c in pod["spec"]["initContainers"] if c["name"] == "profile-agent")
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env.pop("POD_UID") is None  # valueFrom: the downward API's metadata.uid
        home.mkdir()
        env.update({"PATH": os.environ.get("PATH", ""), "PROFILE_API": urls["api"], "HOME_DIR": str(home),
                    "TMPDIR": str(home.parent), "POD_UID": pod["metadata"]["uid"]})
        self.home, self.uid = home, pod["metadata"]["uid"]
        self.process = subprocess.Popen([sys.executable, str(AGENT), "warm"], env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        assert "waiting for a claim" in self.process.stdout.readline()  # its port is held

    def claim(self, body: dict[str, Any]) -> requests.Response:
        return requests.post(f"http://127.0.0.1:{CLAIM_PORT}/claim", json=body, timeout=60)

    def stop(self) -> str:
        """SIGTERM, as the kubelet sends it when the pod stops; the agent's output."""
        self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=120)
        assert self.process.returncode == 0, err
        return out


@pytest.fixture
def warm_agent(urls: dict[str, str], tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], WarmAgent]]:
    started: list[WarmAgent] = []

    def start(pod: dict[str, Any]) -> WarmAgent:
        started.append(WarmAgent(urls, pod, tmp_path / f"home-{len(started)}"))
        return started[-1]

    yield start
    for running in started:
        if running.process.poll() is None:
            running.process.kill()
            running.process.communicate(timeout=60)


def saved_profile(urls: dict[str, str], user: Client, files: dict[str, str], tmp_path: Path) -> None:
    """The user's current profile holds `files` (saved by the agent of an earlier session of theirs)."""
    home = tmp_path / f"earlier-{user.username}"
    home.mkdir()
    for name, text in files.items():
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).write_text(text)
    saved = agent(urls["api"], token(user.user_id, "earlier"), home, "save")
    assert saved.returncode == 0, saved.stderr


def launch(urls: dict[str, str], user: Client, template: str) -> dict[str, Any]:
    """Through the sessions API (the claim), then the Session's add event to session-reconcile."""
    answer = user.post("/api/v1/sessions", json={"template": template})
    assert answer.status_code == 201, answer.text
    session = kube.get("Session", answer.json()["name"], NS)
    session.setdefault("kind", "Session")
    assert deliver(urls["reconcile"], "add", session) == 200
    return answer.json()


def condition(session: str, kind: str) -> dict[str, Any] | None:
    return next((c for c in live("Session", session)["status"]["conditions"] if c["type"] == kind), None)


def test_a_claimed_warm_desktop_gets_the_users_files_and_a_warm_one_before_the_claim_has_none(
        urls: dict[str, str], warm_agent: Callable[[dict[str, Any]], WarmAgent], tmp_path: Path) -> None:
    ann = client_for(urls["api"], f"warm-ann-{uuid.uuid4().hex[:4]}")
    saved_profile(urls, ann, {".mozilla/bookmarks.html": "<a href='https://example.org'>mine</a>",
                              "notes.txt": "written last week"}, tmp_path)
    template, pod = pooled_desktop(urls)

    # The warm desktop: a home of its own, the agent waiting for its claim, and no credential anywhere.
    spec = pod["spec"]
    (waiting,) = spec["initContainers"]
    assert (waiting["name"], waiting["args"], waiting["restartPolicy"]) == ("profile-agent", ["warm"], "Always")
    assert waiting["startupProbe"]["tcpSocket"]["port"] == CLAIM_PORT  # the desktop starts after it holds the port
    assert not [v for v in spec["volumes"] if "secret" in v or "persistentVolumeClaim" in v]
    assert "TOKEN" not in json.dumps(spec)
    assert [c["name"] for c in spec["containers"]] == ["session"]
    assert "PROFILE" not in json.dumps(spec["containers"][0])
    # Only session-reconcile reaches the agent's port; nothing else gets in.
    policy = live("NetworkPolicy", f"warm-{template}")
    assert policy["spec"]["ingress"] == [{
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "streamspace"}},
                  "podSelector": {"matchLabels": {"serving.knative.dev/service": "session-reconcile"}}}],
        "ports": [{"protocol": "TCP", "port": CLAIM_PORT}]}]

    desktop = warm_agent(pod)
    assert list(desktop.home.iterdir()) == []
    # It has no token and none can be had: the storage function answers nothing without one, a claim
    # meant for another pod is refused, and a made-up or another session's token is refused by the
    # platform (the agent keeps waiting, still empty).
    nobody = requests.get(f"{urls['api']}/api/v1/profiles/agent/current", timeout=30)
    assert nobody.status_code == 401
    assert desktop.claim({"token": token(ann.user_id, "other"), "pod": str(uuid.uuid4())}).status_code == 409
    forged = token(ann.user_id, "other").rsplit(":", 1)[0] + ":" + "0" * 64
    refused = desktop.claim({"token": forged, "pod": desktop.uid})
    assert refused.status_code == 403 and refused.json()["error"] == "token refused"
    assert list(desktop.home.iterdir()) == []

    # The launch claims it; session-reconcile hands over the token; the agent restores; only then Running.
    session = launch(urls, ann, template)
    assert session["warmStart"] == {"claimed": True, "reason": "claimed a warm desktop"}
    name = session["name"]
    assert live("Session", name)["status"]["phase"] == "Running"
    assert live("Session", name)["status"]["podName"] == pod["metadata"]["name"]
    restored = condition(name, "ProfileRestored")
    assert restored is not None and (restored["status"], restored["reason"]) == ("True", "Restored")
    assert (desktop.home / "notes.txt").read_text() == "written last week"
    assert (desktop.home / ".mozilla" / "bookmarks.html").read_text().endswith("mine</a>")
    # The claimed desktop's own policy lets session-reconcile ask again (idempotent), nothing more.
    ingress = live("NetworkPolicy", f"ss-{name}")["spec"]["ingress"]
    assert policy["spec"]["ingress"][0] in ingress and len(ingress) == 2
    # Another session's token for this desktop is refused; asking again with its own is answered the same.
    assert desktop.claim({"token": token(ann.user_id, "other"), "pod": desktop.uid}).status_code == 409

    # From now on it is the session's sidecar: what the user does is saved when the pod stops.
    (desktop.home / "notes.txt").write_text("written in the warm desktop")
    assert "saved" in desktop.stop()
    later = tmp_path / "later"
    later.mkdir()
    assert agent(urls["api"], token(ann.user_id, "later"), later, "restore").returncode == 0
    assert (later / "notes.txt").read_text() == "written in the warm desktop"


def test_a_failed_restore_into_a_claimed_desktop_is_reported_in_words(
        urls: dict[str, str], warm_agent: Callable[[dict[str, Any]], WarmAgent], s3_store: S3Store,
        tmp_path: Path) -> None:
    from streamspace.db import fetch_one

    bea = client_for(urls["api"], f"warm-bea-{uuid.uuid4().hex[:4]}")
    saved_profile(urls, bea, {"thesis.tex": "chapter one"}, tmp_path)
    current = fetch_one("SELECT object_key FROM profiles WHERE user_id = %s AND is_current", (bea.user_id,))
    assert current is not None
    s3_store.client.put_object(Bucket=s3_store.bucket, Key=current["object_key"], Body=b"not the archive")
    template, pod = pooled_desktop(urls)
    desktop = warm_agent(pod)

    name = launch(urls, bea, template)["name"]
    status = live("Session", name)["status"]
    failed = condition(name, "ProfileRestored")
    assert failed is not None and (failed["status"], failed["reason"]) == ("False", "RestoreFailed")
    assert "could not be restored" in failed["message"] and "checksum" in failed["message"]
    assert "your saved profile is unchanged" in failed["message"]
    assert status["phase"] == "Running" and status["message"] == failed["message"]  # it starts, and says why
    assert (desktop.home / ".streamspace-profile-not-restored.txt").exists()
    assert not (desktop.home / "thesis.tex").exists()
    recorded = fetch_one("SELECT operation, reason FROM profile_failures WHERE user_id = %s", (bea.user_id,))
    assert recorded is not None and recorded["operation"] == "restore"
    desktop.stop()  # the empty home is never saved over the profile
    assert fetch_one("SELECT count(*) AS n FROM profiles WHERE user_id = %s", (bea.user_id,))["n"] == 1


def test_a_claimed_desktop_whose_agent_does_not_answer_is_replaced_by_the_sessions_own(urls: dict[str, str]) -> None:
    cid = client_for(urls["api"], f"warm-cid-{uuid.uuid4().hex[:4]}")
    template, pod = pooled_desktop(urls)  # nobody listens on its claim port

    name = launch(urls, cid, template)["name"]
    # Never a running desktop without the user's files: the claimed one is deleted, the Session's own
    # Deployment starts a desktop whose init container restores the profile (a cold start).
    gone = kube.get("Pod", pod["metadata"]["name"], NS)
    assert gone is None or gone["metadata"].get("deletionTimestamp")
    assert live("Deployment", f"ss-{name}")["spec"]["replicas"] == 1
    status = live("Session", name)["status"]
    assert status["phase"] == "Pending" and status.get("podName") != pod["metadata"]["name"]
    assert condition(name, "ProfileRestored") is None
