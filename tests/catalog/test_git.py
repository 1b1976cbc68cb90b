"""The git fetch: isolation settings, credentials kept off the command line, clear failure messages."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from streamspace.catalog.git import FetchError, _explain, _git_config, _ssh_command, check_branch, fetch
from streamspace.catalog.urls import parse_repository_url
from streamspace.domain.errors import ValidationError

from .conftest import set_env
from .gitrepo import GitRepo, template


def test_credentials_travel_as_configuration_never_in_the_url() -> None:
    url = parse_repository_url("https://140.82.112.3/org/repo.git", allow_file=False)
    config = dict(_git_config(url, ["140.82.112.3"], "token", "tok123", allow_file=False))
    header = config["http.extraHeader"]
    assert header == "Authorization: Basic " + base64.b64encode(b"x-access-token:tok123").decode()
    assert config["http.curloptResolve"] == "140.82.112.3:443:140.82.112.3"  # pinned to the checked address
    assert config["protocol.allow"] == "never" and config["protocol.file.allow"] == "never"
    assert config["http.followRedirects"] == "false" and config["core.symlinks"] == "false"
    basic = dict(_git_config(url, [], "basic", "bob:pw", allow_file=False))
    assert basic["http.extraHeader"].endswith(base64.b64encode(b"bob:pw").decode())
    assert "http.extraHeader" not in dict(_git_config(url, [], "none", None, allow_file=False))


def test_ssh_uses_strict_host_keys_and_the_pinned_address(tmp_path: Path) -> None:
    url = parse_repository_url("git@git.example.com:org/repo.git", allow_file=False)
    command = _ssh_command(url, ["140.82.112.3"], tmp_path / "id_key", tmp_path / "known_hosts")
    for part in ("StrictHostKeyChecking=yes", f"UserKnownHostsFile={tmp_path / 'known_hosts'}", "BatchMode=yes",
                 "HostKeyAlias=git.example.com", "HostName=140.82.112.3", f"-i {tmp_path / 'id_key'}"):
        assert part in command


def test_ssh_without_known_hosts_is_a_clear_failure(tmp_path: Path) -> None:
    old = set_env(CATALOG_SSH_KNOWN_HOSTS=str(tmp_path / "missing"))
    try:
        url = parse_repository_url("ssh://git@140.82.112.3/org/repo.git", allow_file=False)
        work = tmp_path / "work"
        work.mkdir()
        with pytest.raises(FetchError, match="known host keys"):
            fetch(url, "main", work, addresses=["140.82.112.3"])
    finally:
        set_env(**old)


def test_ssh_key_is_used_from_a_private_file_and_failures_are_explained(tmp_path: Path) -> None:
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    known = tmp_path / "known_hosts"
    known.write_text("")
    old = set_env(CATALOG_SSH_KNOWN_HOSTS=str(known), CATALOG_ALLOW_PRIVATE_URLS="true")
    try:
        url = parse_repository_url("ssh://git@127.0.0.1:1/org/repo.git", allow_file=False)
        work = tmp_path / "work"
        work.mkdir()
        with pytest.raises(FetchError) as caught:
            fetch(url, "main", work, addresses=["127.0.0.1"], auth_type="ssh", secret=key.read_text(), timeout=60)
        assert "cannot connect" in str(caught.value)
        key_file = work / "home" / "id_key"
        assert key_file.stat().st_mode & 0o777 == 0o600
    finally:
        set_env(**old)


def test_fetch_of_a_file_repository(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "src")
    commit = repo.write("t.yaml", template("fetched")).commit()
    url = parse_repository_url(repo.url, allow_file=True)
    work = tmp_path / "work"
    work.mkdir()
    result = fetch(url, "main", work, addresses=[], allow_file=True)
    assert result.commit == commit and (result.checkout / "t.yaml").exists()
    # The file transport is off unless file URLs are allowed.
    other = tmp_path / "work2"
    other.mkdir()
    with pytest.raises(FetchError, match="transport"):
        fetch(url, "main", other, addresses=[], allow_file=False)


def test_messages_and_redaction() -> None:
    assert "does not exist" in _explain("warning: Could not find remote branch nope to clone.", "nope", None,
                                        False, 10)
    assert "authentication failed" in _explain("fatal: Authentication failed for 'https://x/'", "m", None, False, 10)
    assert "longer than 10s" in _explain("", "m", None, True, 10)
    assert "s3cr3t" not in _explain("fatal: weird s3cr3t thing", "m", "s3cr3t", False, 10)


@pytest.mark.parametrize("branch", ["-x", "--upload-pack=evil", "a..b", "a b", "x.lock", "/abs", "a//b", "", None])
def test_branch_names(branch) -> None:
    if branch in ("", None):
        assert check_branch(branch) == "main"
        return
    with pytest.raises(ValidationError):
        check_branch(branch)


def test_good_branch_names() -> None:
    for branch in ("main", "release/1.0", "feature_x-2", "v1.2.3"):
        assert check_branch(branch) == branch
