"""URL safety: schemes, credentials, where a host may point (add time and sync time)."""

from __future__ import annotations

import socket

import pytest
import requests

from streamspace.catalog.urls import normalize_url, parse_repository_url, resolve_destination
from streamspace.domain.errors import ValidationError

from .conftest import set_env
from .gitrepo import GitRepo, template


@pytest.fixture(scope="module")
def base(serve, sink) -> str:
    return serve("catalog") + "/api/v1/catalog"


def refusal(url: str, *, allow_file: bool = False, allow_private: bool = False) -> str:
    with pytest.raises(ValidationError) as caught:
        parsed = parse_repository_url(url, allow_file=allow_file)
        resolve_destination(parsed, allow_private=allow_private)
    assert caught.value.field == "url"
    return caught.value.message


@pytest.mark.parametrize(("url", "expected"), [
    ("http://140.82.112.3/org/repo.git", "http:// is refused"),
    ("https://127.0.0.1/org/repo.git", "loopback"),
    ("https://localhost/org/repo.git", "this machine"),
    ("https://app.localhost/org/repo.git", "this machine"),
    ("https://169.254.169.254/latest/meta-data", "cloud metadata"),
    ("https://[fd00:ec2::254]/repo", "cloud metadata"),
    ("https://[::ffff:169.254.169.254]/repo", "cloud metadata"),
    ("https://169.254.10.1/repo", "link-local"),
    ("https://0.0.0.0/repo", "unspecified"),
    ("https://10.0.0.5/repo", "private"),
    ("https://192.168.1.10/repo", "private"),
    ("https://[::1]/repo", "loopback"),
    ("https://100.100.100.200/repo", "cloud metadata"),
    ("ssh://git@127.0.0.1/org/repo.git", "loopback"),
    ("git@127.0.0.1:org/repo.git", "loopback"),
    ("file:///srv/git/repo", "CATALOG_ALLOW_FILE_URLS"),
    ("https://user:pass@140.82.112.3/org/repo.git", "credentials in the URL"),
    ("https://token@140.82.112.3/org/repo.git", "credentials in the URL"),
    ("ssh://git:pw@140.82.112.3/org/repo.git", "credentials in the URL"),
    ("git://140.82.112.3/org/repo.git", "git:// scheme is refused"),
    ("ext::sh%20-c%20touch%20/tmp/pwned", "transport"),
    ("host.example.com", "expected https://"),
    ("-uhttps://140.82.112.3/x", "must not start with '-'"),
    ("https://140.82.112.3/", "no repository path"),
    ("https://140.82.112.3:99999/repo", "port"),
    ("https://140.82.112.3/repo?x=1", "no query"),
    ("https://exa mple.com/repo", "without spaces"),
    ("https://bad_host!/repo", "not a valid host"),
    ("", "required"),
])
def test_refused_urls(url: str, expected: str) -> None:
    assert expected in refusal(url)


def test_private_switch_opens_private_networks_but_never_metadata() -> None:
    for url in ("https://127.0.0.1/org/repo.git", "https://10.0.0.5/repo", "https://localhost/org/repo"):
        parsed = parse_repository_url(url, allow_file=False)
        assert resolve_destination(parsed, allow_private=True)
    for url in ("https://169.254.169.254/x", "https://[fd00:ec2::254]/x", "https://169.254.1.1/x",
                "https://0.0.0.0/x"):
        refusal(url, allow_private=True)


def test_accepted_urls_and_their_normalised_form() -> None:
    https = parse_repository_url("https://GitHub.com/Org/Templates.git/", allow_file=False)
    ssh = parse_repository_url("ssh://git@github.com:22/org/templates", allow_file=False)
    scp = parse_repository_url("git@github.com:org/templates.git", allow_file=False)
    assert https.normalized == ssh.normalized == scp.normalized == "github.com/org/templates"
    assert scp.scheme == "ssh" and scp.user == "git"
    assert parse_repository_url("https://example.com:8443/x/y", allow_file=False).normalized == "example.com:8443/x/y"
    assert parse_repository_url("file:///srv/repo.git", allow_file=True).normalized == "file:///srv/repo"
    assert normalize_url("http://github.com/org/templates") == "github.com/org/templates"
    assert normalize_url("https://user:secret@github.com/org/templates.git") == "github.com/org/templates"
    assert normalize_url("not a url") is None and normalize_url(None) is None


def test_add_time_refusals_answer_400(base, admin) -> None:
    for url in ("http://140.82.112.3/org/repo.git", "https://127.0.0.1/org/repo.git",
                "https://169.254.169.254/latest", "https://localhost/x", "file:///tmp/whatever"):
        set_env(CATALOG_ALLOW_FILE_URLS="false")
        try:
            response = requests.post(f"{base}/repositories", json={"name": "ssrf", "url": url}, headers=admin,
                                     timeout=30)
        finally:
            set_env(CATALOG_ALLOW_FILE_URLS="true")
        assert response.status_code == 400, (url, response.text)
        assert response.json()["error"] == "invalid url"


def test_sync_time_check_catches_dns_rebinding(base, admin, monkeypatch) -> None:
    """A name that resolved to a public address when added and to the metadata address at sync
    time is refused before git runs."""
    from streamspace.catalog.sync import sync_repository

    from .conftest import one as fetch_one

    answers = {"public": "140.82.112.3"}
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host == "templates.rebind.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers["public"], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    response = requests.post(f"{base}/repositories", headers=admin, timeout=30,
                             json={"name": "rebind", "url": "https://templates.rebind.example/org/t.git"})
    assert response.status_code == 201, response.text
    answers["public"] = "169.254.169.254"
    outcome = sync_repository(response.json()["id"])
    assert outcome.status == "failed" and "cloud metadata" in outcome.message
    row = fetch_one("SELECT status, error_message FROM repositories WHERE id = %s", (response.json()["id"],))
    assert row["status"] == "failed" and "169.254.169.254" in row["error_message"]


def test_file_urls_refused_at_sync_time_once_the_switch_is_off(base, admin, tmp_path) -> None:
    from streamspace.catalog.sync import sync_repository

    repo = GitRepo(tmp_path / "switch")
    repo.write("t.yaml", template("switch-t")).commit()
    response = requests.post(f"{base}/repositories", json={"name": "switch", "url": repo.url}, headers=admin,
                             timeout=30)
    assert response.status_code == 201
    set_env(CATALOG_ALLOW_FILE_URLS="false")
    try:
        outcome = sync_repository(response.json()["id"])
    finally:
        set_env(CATALOG_ALLOW_FILE_URLS="true")
    assert outcome.status == "failed" and "CATALOG_ALLOW_FILE_URLS" in outcome.message
    assert sync_repository(response.json()["id"]).status == "synced"
