"""Persistent profiles in S3 (issue 15): the profile agent run for real (a subprocess, standard library
only) on temporary home folders, against the storage function over real HTTP, moto's S3 server and the
embedded Postgres. The agent holds no storage credentials: only its session's token and presigned URLs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import Client, environment, make_user, token_for
from tests.storage.conftest import S3Store

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "deploy" / "docker" / "profile_agent.py"
NS = "streamspace"


@pytest.fixture(scope="module")
def api(db_url: str, s3_store: S3Store, serve: Callable[..., str]) -> Iterator[str]:
    with environment(HOME_STORAGE="s3", PROFILE_KEEP="3"):
        yield serve("storage")


def agent(api: str, token: str, home: Path, command: str) -> subprocess.CompletedProcess[str]:
    """The agent as its container runs it: its own process, only its environment."""
    env = {"PATH": os.environ.get("PATH", ""), "PROFILE_API": api, "PROFILE_TOKEN": token, "HOME_DIR": str(home)}
    return subprocess.run([sys.executable, str(AGENT), command], env=env, capture_output=True, text=True,
                          timeout=120)


def token(user_id: str, desk: str = "desk-1") -> str:
    """The agent token of that user's session `desk`; the session's index row is made if it has none (the
    storage function honours a token only while its session stands)."""
    from streamspace.db import fetch_one, transaction
    from streamspace.profiles.agent_tokens import agent_token
    from streamspace.sessions import store as session_store

    session = f"{desk}-{user_id[:8]}"  # session names are unique in the namespace, not per user
    owner = fetch_one("SELECT username FROM users WHERE id = %s", (user_id,))
    with transaction() as conn:
        if conn.execute("SELECT 1 FROM sessions WHERE namespace = %s AND name = %s", (NS, session)).fetchone() is None:
            session_store.insert(conn, namespace=NS, name=session, user_id=user_id,
                                 username=owner["username"] if owner else "?", template="desktop", state="running",
                                 cpu_millis=0, memory_bytes=0, cpu_request_millis=0, memory_request_bytes=0,
                                 storage_bytes=0, persistent_home=True, idle_timeout_seconds=None,
                                 max_duration_seconds=None, tags=[])
    return agent_token(NS, session, user_id)


def snapshot(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}


def user(api: str, name: str) -> Client:
    user_id = make_user(name)
    return Client(api, token_for(user_id, name), name, user_id)


def test_restore_change_save_then_restore_into_an_empty_home_gives_the_changed_content(api: str,
                                                                                       tmp_path: Path) -> None:
    alice = user(api, "profile-alice")
    first = tmp_path / "first"
    started = agent(api, token(alice.user_id), first, "restore")
    assert started.returncode == 0 and "no profile yet" in started.stdout, started.stderr
    (first / ".config" / "app").mkdir(parents=True)
    (first / ".config" / "app" / "settings.ini").write_text("theme=dark\n")
    (first / "notes.txt").write_text("hello")
    saved = agent(api, token(alice.user_id), first, "save")
    assert saved.returncode == 0, saved.stderr

    second = tmp_path / "second"
    assert agent(api, token(alice.user_id, "desk-2"), second, "restore").returncode == 0
    assert snapshot(second) == snapshot(first)
    (second / "notes.txt").write_text("hello again")
    (second / ".config" / "app" / "settings.ini").unlink()
    (second / "new.bin").write_bytes(os.urandom(4096))
    assert agent(api, token(alice.user_id, "desk-2"), second, "save").returncode == 0

    third = tmp_path / "third"
    assert agent(api, token(alice.user_id, "desk-3"), third, "restore").returncode == 0
    assert snapshot(third) == snapshot(second)
    versions = alice.get("/api/v1/profiles").json()["profiles"]
    assert [v["current"] for v in versions] == [True, False]
    assert versions[0]["session"].startswith("desk-2-") and versions[0]["sizeBytes"] > 0


def test_the_sidecar_saves_on_sigterm(api: str, tmp_path: Path) -> None:
    bob = user(api, "profile-bob")
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ.get("PATH", ""), "PROFILE_API": api, "PROFILE_TOKEN": token(bob.user_id),
           "HOME_DIR": str(home)}
    sidecar = subprocess.Popen([sys.executable, str(AGENT), "sidecar"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert sidecar.stdout is not None
    assert "waiting" in sidecar.stdout.readline()  # its handler is installed: the pod may stop now
    (home / "work.txt").write_text("unsaved work")  # the session's work, after the restore
    sidecar.send_signal(signal.SIGTERM)
    out, err = sidecar.communicate(timeout=120)
    assert sidecar.returncode == 0, err
    assert "saved" in out
    restored = tmp_path / "restored"
    assert agent(api, token(bob.user_id), restored, "restore").returncode == 0
    assert (restored / "work.txt").read_text() == "unsaved work"


def _announce(api: str, agent_token: str, body: bytes) -> dict:
    import hashlib

    answer = requests.post(f"{api}/api/v1/profiles/agent/uploads", timeout=30,
                           headers={"Authorization": f"Bearer {agent_token}"},
                           json={"size": len(body), "sha256": hashlib.sha256(body).hexdigest()})
    assert answer.status_code == 201, answer.text
    return answer.json()


def _commit(api: str, agent_token: str, upload: dict, body: bytes) -> requests.Response:
    import hashlib

    return requests.post(f"{api}/api/v1/profiles/agent/uploads/{upload['id']}/commit", timeout=30,
                         headers={"Authorization": f"Bearer {agent_token}"},
                         json={"size": len(body), "sha256": hashlib.sha256(body).hexdigest()})


def test_an_interrupted_or_partial_upload_leaves_the_previous_profile_current(api: str, tmp_path: Path,
                                                                              s3_store: S3Store) -> None:
    carol = user(api, "profile-carol")
    home = tmp_path / "home"
    home.mkdir()
    (home / "good.txt").write_text("the last good profile")
    assert agent(api, token(carol.user_id), home, "save").returncode == 0
    good = carol.get("/api/v1/profiles").json()["profiles"][0]

    archive = os.urandom(200_000)
    # The upload never happened (the pod was killed before it): nothing to commit.
    upload = _announce(api, token(carol.user_id), archive)
    missing = _commit(api, token(carol.user_id), upload, archive)
    assert missing.status_code == 400 and missing.json()["error"] == "upload incomplete"
    # Only part of it arrived: the size and checksum give it away.
    upload = _announce(api, token(carol.user_id), archive)
    put = requests.put(upload["uploadUrl"], data=archive[:50_000], headers=upload["headers"], timeout=30)
    assert put.status_code == 200, put.text
    partial = _commit(api, token(carol.user_id), upload, archive)
    assert partial.status_code == 400 and partial.json()["error"] == "checksum mismatch"

    versions = carol.get("/api/v1/profiles").json()["profiles"]
    assert [(v["id"], v["current"]) for v in versions] == [(good["id"], True)]
    # An announced save never committed is cleaned up a day later, when the user's next save starts.
    from streamspace.db import execute, fetch_one

    execute("UPDATE profiles SET created_at = now() - interval '2 days' WHERE user_id = %s AND status = 'uploading'",
            (carol.user_id,))
    _announce(api, token(carol.user_id), b"next")
    left = fetch_one("SELECT count(*) AS n FROM profiles WHERE user_id = %s AND status = 'uploading'"
                     " AND created_at < now() - interval '1 day'", (carol.user_id,))
    assert left is not None and left["n"] == 0
    restored = tmp_path / "restored"
    assert agent(api, token(carol.user_id), restored, "restore").returncode == 0
    assert (restored / "good.txt").read_text() == "the last good profile"


def test_a_profile_bigger_than_the_storage_quota_is_refused_and_the_previous_stays_current(api: str,
                                                                                          tmp_path: Path) -> None:
    from streamspace.db import execute

    dave = user(api, "profile-dave")
    home = tmp_path / "home"
    home.mkdir()
    (home / "small.txt").write_text("fits")
    assert agent(api, token(dave.user_id), home, "save").returncode == 0
    execute("INSERT INTO user_quotas (user_id, max_storage_bytes) VALUES (%s, %s)", (dave.user_id, 300_000))
    (home / "big.bin").write_bytes(os.urandom(400_000))  # random: gzip cannot shrink it
    refused = agent(api, token(dave.user_id), home, "save")
    assert refused.returncode == 1 and "quota" in refused.stderr.lower()
    versions = dave.get("/api/v1/profiles").json()["profiles"]
    assert len(versions) == 1 and versions[0]["current"]


def test_a_profile_that_cannot_be_restored_starts_an_empty_home_with_a_note_and_is_never_saved_over(
        api: str, tmp_path: Path, s3_store: S3Store) -> None:
    erin = user(api, "profile-erin")
    home = tmp_path / "home"
    home.mkdir()
    (home / "precious.txt").write_text("keep me")
    assert agent(api, token(erin.user_id), home, "save").returncode == 0
    from streamspace.db import fetch_one

    row = fetch_one("SELECT object_key FROM profiles WHERE user_id = %s AND is_current", (erin.user_id,))
    assert row is not None
    s3_store.client.put_object(Bucket=s3_store.bucket, Key=row["object_key"], Body=b"not the archive")

    fresh = tmp_path / "fresh"
    started = agent(api, token(erin.user_id), fresh, "restore")
    assert started.returncode == 0  # the session starts anyway
    note = (fresh / ".streamspace-profile-not-restored.txt").read_text()
    assert "could not be restored" in note and "checksum" in note
    assert agent(api, token(erin.user_id), fresh, "save").returncode == 1
    versions = erin.get("/api/v1/profiles").json()["profiles"]
    assert len(versions) == 1 and versions[0]["current"]


def test_versions_are_the_owners_an_older_one_can_be_made_current_and_retention_keeps_the_last_n(
        api: str, tmp_path: Path, s3_store: S3Store) -> None:
    frank = user(api, "profile-frank")
    other = user(api, "profile-grace")
    admin_id = make_user("profile-admin", role="admin")
    admin = Client(api, token_for(admin_id, "profile-admin", "admin"))
    home = tmp_path / "home"
    home.mkdir()
    for version in range(4):  # one save per session (a session's later save replaces its earlier ones)
        (home / "version.txt").write_text(str(version))
        assert agent(api, token(frank.user_id, f"desk-{version}"), home, "save").returncode == 0
    versions = frank.get("/api/v1/profiles").json()["profiles"]
    assert len(versions) == 3  # PROFILE_KEEP=3: the oldest went, with its object
    listed = s3_store.client.list_objects_v2(Bucket=s3_store.bucket, Prefix=f"tests/profiles/{frank.user_id}/")
    assert len(listed.get("Contents", [])) == 3
    oldest = versions[-1]

    assert other.post(f"/api/v1/profiles/{oldest['id']}/current").status_code == 404
    assert other.delete(f"/api/v1/profiles/{oldest['id']}").status_code == 404
    assert all(v["userId"] != frank.user_id for v in other.get("/api/v1/profiles").json()["profiles"])
    assert {frank.user_id} <= {v["userId"] for v in admin.get("/api/v1/profiles").json()["profiles"]}

    assert frank.post(f"/api/v1/profiles/{oldest['id']}/current").status_code == 200
    restored = tmp_path / "restored"
    assert agent(api, token(frank.user_id), restored, "restore").returncode == 0
    assert (restored / "version.txt").read_text() == "1"
    assert frank.delete(f"/api/v1/profiles/{oldest['id']}").status_code == 409  # current
    newest = versions[0]
    assert frank.delete(f"/api/v1/profiles/{newest['id']}").status_code == 200
    assert len(frank.get("/api/v1/profiles").json()["profiles"]) == 2


def test_agent_tokens_are_checked_and_scoped_to_their_user(api: str) -> None:
    henry = user(api, "profile-henry")
    ivy = user(api, "profile-ivy")
    forged = token(henry.user_id)[:-4] + "0000"
    assert requests.get(f"{api}/api/v1/profiles/agent/current", timeout=30,
                        headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    assert requests.get(f"{api}/api/v1/profiles/agent/current", timeout=30,
                        headers={"Authorization": f"Bearer {henry.http.headers['Authorization'][7:]}"}
                        ).status_code == 401  # a user's access token is not an agent token
    from streamspace.db import execute

    execute("UPDATE users SET active = false WHERE id = %s", (ivy.user_id,))
    assert requests.get(f"{api}/api/v1/profiles/agent/current", timeout=30,
                        headers={"Authorization": f"Bearer {token(ivy.user_id)}"}).status_code == 401
    execute("UPDATE users SET active = true WHERE id = %s", (ivy.user_id,))
    body = b"x" * 10
    upload = _announce(api, token(henry.user_id), body)
    assert "X-Amz-Credential" in upload["uploadUrl"] and "X-Amz-Expires" in upload["uploadUrl"]
    assert f"/profiles/{henry.user_id}/" in upload["uploadUrl"]
    assert _commit(api, token(ivy.user_id), upload, body).status_code == 404


def test_agent_routes_answer_501_where_homes_are_volumes(api: str, setting: Callable[..., None]) -> None:
    jane = user(api, "profile-jane")
    setting(HOME_STORAGE="volume")
    answer = requests.get(f"{api}/api/v1/profiles/agent/current", timeout=30,
                          headers={"Authorization": f"Bearer {token(jane.user_id)}"})
    assert answer.status_code == 501 and answer.json()["error"] == "profiles not enabled"
