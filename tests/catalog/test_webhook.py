"""The repository webhook: HMAC over the raw body, URL and branch matching, sync requests emitted."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
import requests

from .conftest import set_env
from .gitrepo import GitRepo, template

SECRET = "webhook-secret-for-tests"


@pytest.fixture(scope="module")
def urls(serve, sink) -> dict[str, str]:
    base = serve("catalog", "webhooks")
    return {"hook": base + "/webhooks/repository/sync", "catalog": base + "/api/v1/catalog"}


@pytest.fixture(scope="module")
def secret(db_url):
    old = set_env(WEBHOOK_SECRET=SECRET)
    yield SECRET
    set_env(**old)


def signed(body: bytes, key: str = SECRET) -> dict[str, str]:
    digest = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def repos(urls, admin, secret, sink, tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("hook")
    repo = GitRepo(root / "hooked")
    repo.write("t.yaml", template("hooked")).commit()
    ids = {}
    for name, body in (("file-main", {"url": repo.url}),
                       ("file-dev", {"url": repo.url, "branch": "dev"}),
                       ("public", {"url": "https://140.82.112.3/Org/Templates.git"})):
        response = requests.post(f"{urls['catalog']}/repositories", json={"name": name, **body}, headers=admin,
                                 timeout=30)
        assert response.status_code == 201, response.text
        ids[name] = response.json()["id"]
    ids["file-url"] = repo.url
    sink.take()
    return ids


def test_without_a_configured_secret_the_route_is_disabled(urls, db_url):
    body = json.dumps({"repository_url": "https://140.82.112.3/org/templates"}).encode()
    old = set_env(WEBHOOK_SECRET=None)
    try:
        response = requests.post(urls["hook"], data=body, headers=signed(body, "anything"), timeout=30)
    finally:
        set_env(**old)
    assert response.status_code == 503
    assert "WEBHOOK_SECRET" in response.json()["message"]


def test_bad_signatures_are_refused(urls, repos, sink):
    body = json.dumps({"repository_url": repos["file-url"], "ref": "refs/heads/main"}).encode()
    cases = [
        {},
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"X-Hub-Signature-256": "sha256=nothex"},
        signed(body, "wrong-secret"),
        signed(body + b" "),  # a signature of another body
    ]
    for headers in cases:
        response = requests.post(urls["hook"], data=body, headers={"Content-Type": "application/json", **headers},
                                 timeout=30)
        assert response.status_code == 401, headers
        assert response.json()["error"] == "invalid signature"
    assert sink.take() == []


def test_a_signed_push_requests_a_sync_of_matching_repositories(urls, repos, sink):
    from streamspace.db import fetch_all

    body = json.dumps({"ref": "refs/heads/main", "repository": {"clone_url": repos["file-url"] + ".git",
                                                                "html_url": "https://example.com/x"}}).encode()
    response = requests.post(urls["hook"], data=body, headers=signed(body), timeout=30)
    assert response.status_code == 202, response.text
    assert response.json()["repositories"] == 1
    events = sink.take()
    assert [json.loads(e[1]) for e in events] == [{"repositoryId": repos["file-main"]}]
    assert events[0][0]["ce-type"] == "io.streamspace.catalog.sync.requested"
    requested = {str(r["id"]) for r in fetch_all("SELECT id FROM repositories WHERE sync_requested_at IS NOT NULL"
                                                 " AND name <> 'public'")}
    assert repos["file-main"] in requested


def test_url_forms_and_branches_match_as_documented(urls, repos, sink):
    def push(payload: dict) -> dict:
        body = json.dumps(payload).encode()
        response = requests.post(urls["hook"], data=body, headers=signed(body), timeout=30)
        assert response.status_code == 202, response.text
        return response.json()

    # https and ssh forms, other case, .git, trailing slash: one repository.
    assert push({"repository_url": "git@140.82.112.3:org/templates.git", "branch": "main"})["repositories"] == 1
    assert push({"repository_url": "https://140.82.112.3/ORG/templates/", "ref": "refs/heads/main"})[
        "repositories"] == 1
    # No branch given: every branch of that URL.
    assert push({"repository_url": repos["file-url"]})["repositories"] == 2
    assert push({"repository_url": repos["file-url"], "branch": "dev"})["repositories"] == 1
    assert push({"repository_url": repos["file-url"], "branch": "other"}) == {
        "message": "no repository matches this push", "repositories": 0}
    tag = push({"repository_url": repos["file-url"], "ref": "refs/tags/v1"})
    assert tag["repositories"] == 0 and "not a branch" in tag["message"]
    sink.take()


def test_form_encoded_payloads_and_bad_bodies(urls, repos, sink):
    payload = json.dumps({"repository_url": repos["file-url"], "ref": "refs/heads/dev"})
    body = ("payload=" + requests.utils.quote(payload)).encode()
    headers = {**signed(body), "Content-Type": "application/x-www-form-urlencoded"}
    response = requests.post(urls["hook"], data=body, headers=headers, timeout=30)
    assert response.status_code == 202 and response.json()["repositories"] == 1
    for bad in (b"not json", b"[1,2]", json.dumps({"ref": "refs/heads/main"}).encode()):
        response = requests.post(urls["hook"], data=bad, headers=signed(bad), timeout=30)
        assert response.status_code == 400, bad
    sink.take()
