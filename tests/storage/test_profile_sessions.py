"""Sessions whose homes are persistent profiles (HOME_STORAGE=s3, issue 15), end to end on the parts we
have: session-reconcile over real HTTP against the simulated API server makes the pod spec (an emptyDir
home, the agent as restore init container and sidecar, its token in an owned Secret only the agent
mounts); then the real agent (deploy/docker/profile_agent.py, its own process) runs with that pod's
settings and that Secret's token against the storage function, moto's S3 server and the embedded
Postgres: restore on start, save on hibernate and on terminate, the next session of the same user gets
the files, and the token is worth nothing for another user's profile or once its session has ended."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from streamspace import kube
from tests.conftest import environment, make_user
from tests.reconcile.reconcile_helpers import NS, add_template, deliver, get, live, session_manifest
from tests.storage.conftest import S3Store

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "deploy" / "docker" / "profile_agent.py"


@pytest.fixture(scope="module")
def urls(db_url: str, s3_store: S3Store, sim: Any, serve: Callable[..., str]) -> Iterator[dict[str, str]]:
    from streamspace.local.gateway import load_function_app
    from streamspace.local.server import BackgroundServer

    with environment(HOME_STORAGE="s3", PROFILE_SAVE_GRACE="90s"):
        reconcile = BackgroundServer(load_function_app("session-reconcile")).start()
        templates = BackgroundServer(load_function_app("template-reconcile")).start()
        add_template(templates.url, "roaming-desk")
        try:
            yield {"reconcile": reconcile.url, "storage": serve("storage")}
        finally:
            reconcile.stop()
            templates.stop()


def start_session(urls: dict[str, str], name: str, user: str) -> dict[str, Any]:
    obj = kube.create(session_manifest(name, user=user, template="roaming-desk"))
    obj.setdefault("kind", "Session")
    assert deliver(urls["reconcile"], "add", obj) == 200
    return live("Deployment", f"ss-{name}")


def set_state(urls: dict[str, str], name: str, state: str) -> None:
    obj = kube.merge_patch("Session", name, {"spec": {"state": state}}, NS)
    obj.setdefault("kind", "Session")
    assert deliver(urls["reconcile"], "update", obj) == 200


def agent_token(session: str) -> str:
    secret = live("Secret", f"ss-{session}")
    return base64.b64decode(secret["data"]["token"]).decode()


class Agent:
    """The agent as the pod runs it: the environment its container spec gives it (the storage function's
    address is this test's), the token from the Secret as a file, the home an empty folder."""

    def __init__(self, urls: dict[str, str], deployment: dict[str, Any], token: str, home: Path) -> None:
        pod = deployment["spec"]["template"]["spec"]
        restore = next(c for c in pod["initContainers"] if c["name"] == "profile-restore")
        self.env = {e["name"]: e["value"] for e in restore["env"]}
        home.mkdir()  # the pod's emptyDir
        token_file = home.parent / f"{home.name}.token"
        token_file.write_text(token)
        self.env.update({"PATH": os.environ.get("PATH", ""), "PROFILE_API": urls["storage"],
                         "PROFILE_TOKEN_FILE": str(token_file), "HOME_DIR": str(home), "TMPDIR": str(home.parent)})
        self.home = home

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(AGENT), command], env=self.env, capture_output=True, text=True,
                              timeout=120)

    def sidecar(self) -> subprocess.Popen[str]:
        process = subprocess.Popen([sys.executable, str(AGENT), "sidecar"], env=self.env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        assert process.stdout is not None
        assert "waiting" in process.stdout.readline()  # started, its SIGTERM handler in place
        return process


def stop(sidecar: subprocess.Popen[str]) -> str:
    """SIGTERM, as the kubelet sends it when the pod stops; the sidecar's output."""
    sidecar.send_signal(signal.SIGTERM)
    out, err = sidecar.communicate(timeout=120)
    assert sidecar.returncode == 0, err
    return out


def test_a_session_pod_restores_the_profile_saves_it_when_it_stops_and_the_next_session_gets_it(
        urls: dict[str, str], tmp_path: Path) -> None:
    user_id = make_user("roaming-ann")
    deployment = start_session(urls, "ann-one", "roaming-ann")
    session = live("Session", "ann-one")
    pod = deployment["spec"]["template"]["spec"]

    # The pod: no claim, a pod-local home the agent restores before the desktop starts and saves after it.
    assert get("PersistentVolumeClaim", "home-roaming-ann") is None
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["user-home"] and "persistentVolumeClaim" not in volumes["user-home"]
    assert volumes["profile-token"]["secret"]["secretName"] == "ss-ann-one"
    restore, sidecar = pod["initContainers"]
    assert (restore["name"], restore["args"], restore.get("restartPolicy")) == ("profile-restore", ["restore"], None)
    assert (sidecar["name"], sidecar["args"], sidecar["restartPolicy"]) == ("profile-sidecar", ["sidecar"], "Always")
    assert pod["terminationGracePeriodSeconds"] == 90
    for agent in (restore, sidecar):
        assert {m["name"]: m["mountPath"] for m in agent["volumeMounts"]}["user-home"] == "/config"
        assert agent["securityContext"]["runAsNonRoot"] is True
        assert agent["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # The desktop never sees the token: not mounted, not in its environment.
    desktop = pod["containers"][0]
    assert [c["name"] for c in pod["containers"]] == ["session"]
    assert {m["name"] for m in desktop["volumeMounts"]} == {"dshm", "user-home"}
    assert "PROFILE" not in str(desktop.get("env"))
    # The token lives in a Secret the Session owns (deleted with it).
    secret = live("Secret", "ss-ann-one")
    assert secret["metadata"]["ownerReferences"][0]["uid"] == session["metadata"]["uid"]
    # Egress: the storage function's pods, on the port serving its HTTP, besides DNS and the internet.
    egress = live("NetworkPolicy", "ss-ann-one")["spec"]["egress"]
    assert {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "streamspace"}},
                    "podSelector": {"matchLabels": {"serving.knative.dev/service": "storage"}}}],
            "ports": [{"protocol": "TCP", "port": 8012}]} in egress

    # First start: nothing to restore yet. The user works; hibernation stops the pod: the sidecar saves.
    first_token = agent_token("ann-one")
    first = Agent(urls, deployment, first_token, tmp_path / "first")
    started = first.run("restore")
    assert started.returncode == 0 and "no profile yet" in started.stdout, started.stderr
    running = first.sidecar()
    (first.home / ".mozilla").mkdir()
    (first.home / ".mozilla" / "bookmarks.html").write_text("<a href='https://example.org'>mine</a>")
    set_state(urls, "ann-one", "hibernated")
    assert live("Deployment", "ss-ann-one")["spec"]["replicas"] == 0
    assert "saved" in stop(running)

    # Woken: a new pod, an empty home, restored before the desktop starts.
    set_state(urls, "ann-one", "running")
    woken = Agent(urls, live("Deployment", "ss-ann-one"), agent_token("ann-one"), tmp_path / "woken")
    assert woken.run("restore").returncode == 0
    assert (woken.home / ".mozilla" / "bookmarks.html").read_text().endswith("mine</a>")
    running = woken.sidecar()
    (woken.home / "notes.txt").write_text("written before the session ended")

    # Terminated: the owned objects go (the Secret with them); the sidecar's last save is still honoured.
    set_state(urls, "ann-one", "terminated")
    assert get("Secret", "ss-ann-one") is None and get("Deployment", "ss-ann-one") is None
    assert "saved" in stop(running)

    # The user's next session starts from what the last one saved.
    second = Agent(urls, start_session(urls, "ann-two", "roaming-ann"), agent_token("ann-two"), tmp_path / "second")
    assert agent_token("ann-two") != first_token  # each session its own token
    assert second.run("restore").returncode == 0
    assert (second.home / "notes.txt").read_text() == "written before the session ended"
    assert (second.home / ".mozilla" / "bookmarks.html").exists()
    from streamspace.db import fetch_one

    saved = fetch_one("SELECT count(*) AS n FROM profiles WHERE user_id = %s AND status = 'ready'", (user_id,))
    assert saved is not None and saved["n"] == 1  # one session's saves: its last replaced the hibernation's


def test_an_agent_token_is_refused_for_another_users_profile_and_once_its_session_has_ended(
        urls: dict[str, str], tmp_path: Path) -> None:
    from streamspace.db import execute
    from streamspace.profiles.agent_tokens import agent_token as sign

    cara_id = make_user("roaming-cara")
    dan_id = make_user("roaming-dan")
    cara = Agent(urls, start_session(urls, "cara-one", "roaming-cara"), agent_token("cara-one"),
                 tmp_path / "cara")
    assert cara.run("restore").returncode == 0
    (cara.home / "secret-plans.txt").write_text("cara's")
    assert cara.run("save").returncode == 0
    start_session(urls, "dan-one", "roaming-dan")

    def current(token: str) -> requests.Response:
        return requests.get(f"{urls['storage']}/api/v1/profiles/agent/current", timeout=30,
                            headers={"Authorization": f"Bearer {token}"})

    # Dan's token is Dan's: his (empty) profile, never Cara's.
    assert current(agent_token("dan-one")).json() == {"id": None, "downloadUrl": None}
    assert current(agent_token("cara-one")).json()["downloadUrl"]
    # A token naming Cara while claiming Dan's session, or naming Dan on Cara's session: refused even if
    # signed (the session must be that user's), and a token edited by hand fails its signature.
    assert current(sign(NS, "dan-one", cara_id)).status_code == 401
    assert current(sign(NS, "cara-one", dan_id)).status_code == 401
    edited = agent_token("dan-one").replace(dan_id, cara_id)
    assert current(edited).status_code == 401

    # Ended: within the save grace period the last save is honoured; after it, nothing.
    token = agent_token("cara-one")
    set_state(urls, "cara-one", "terminated")
    assert current(token).status_code == 200
    execute("UPDATE sessions SET updated_at = now() - interval '10 minutes' WHERE namespace = %s AND name = %s",
            (NS, "cara-one"))
    ended = current(token)
    assert ended.status_code == 401 and ended.json()["error"] == "session ended"
    assert cara.run("save").returncode == 1
    # Deleted: the delete event removes its index row, and the token is worth nothing from then on.
    dan_token = agent_token("dan-one")
    dan = live("Session", "dan-one")
    kube.delete("Session", "dan-one", NS)
    assert deliver(urls["reconcile"], "delete", dan) == 200
    assert current(dan_token).status_code == 401
