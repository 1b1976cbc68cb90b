"""Repository administration: input validation, access, conflicts, secrets at rest."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from .gitrepo import GitRepo, template
from .test_sync import add, repository


@pytest.fixture(scope="module")
def base(serve, sink) -> str:
    return serve("catalog") + "/api/v1/catalog"


def test_bad_repository_input_is_refused(base, admin, user, tmp_path):
    repo = GitRepo(tmp_path / "input")
    repo.write("t.yaml", template("input-x")).commit()
    cases = [
        ({"name": "x", "url": "not a url"}, "invalid url"),
        ({"name": "x", "url": "https://"}, "invalid url"),
        ({"name": "x", "url": repo.url, "authType": "kerberos", "authSecret": "s"}, "invalid authType"),
        ({"name": "x", "url": repo.url, "authType": "token", "authSecret": "s"}, "invalid authType"),
        ({"name": "x", "url": "https://140.82.112.3/org/repo.git", "authType": "basic", "authSecret": "nocolon"},
         "invalid authSecret"),
        ({"name": "x", "url": "https://140.82.112.3/org/repo.git", "authType": "token"}, "invalid authSecret"),
        # not a string: refused by validation, not by an assert that `python -O` would remove (issue 13)
        ({"name": "x", "url": "https://140.82.112.3/org/repo.git", "authType": "token", "authSecret": 12345},
         "invalid authSecret"),
        ({"name": "x", "url": "https://140.82.112.3/org/repo.git", "authSecret": "tok"}, "invalid authSecret"),
        ({"name": "x", "url": "git@140.82.112.3:org/repo.git", "authType": "ssh", "authSecret": "not a key"},
         "invalid authSecret"),
        ({"name": "x", "url": repo.url, "branch": "--upload-pack=touch /tmp/x"}, "invalid branch"),
        ({"name": "x", "url": repo.url, "branch": "a..b"}, "invalid branch"),
        ({"name": "", "url": repo.url}, "invalid name"),
        ({"name": "x", "url": repo.url, "owner": "me"}, "invalid owner"),
    ]
    for body, error in cases:
        response = requests.post(f"{base}/repositories", json=body, headers=admin, timeout=30)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"] == error, (body, response.json())

    assert add(base, admin, "dup-a", repo.url).status_code == 201
    again = add(base, admin, "dup-a", repo.url + "/")
    assert again.status_code == 409
    assert add(base, admin, "dup-b", repo.url + ".git").status_code == 409  # same normalised URL and branch
    assert add(base, admin, "dup-c", repo.url, branch="other").status_code == 201

    # Users may list repositories (where the catalog comes from), never their secrets or sync internals.
    seen = requests.get(f"{base}/repositories", headers=user, timeout=30)
    assert seen.status_code == 200
    listed = {r["name"]: r for r in seen.json()["repositories"]}
    assert set(listed["dup-a"]) == {"id", "name", "url", "status", "templateCount", "lastSync"}
    assert requests.get(f"{base}/repositories/{listed['dup-a']['id']}", headers=user, timeout=30).status_code == 403
    assert add(base, user, "by-user", repo.url).status_code == 403
    assert requests.post(f"{base}/sync", headers=user, timeout=30).status_code == 403
    assert requests.get(f"{base}/repositories", timeout=30).status_code == 401


def test_secrets_are_encrypted_at_rest_and_never_returned(base, admin, sink):
    from cryptography.fernet import Fernet

    from streamspace.config import environment

    from .conftest import one as fetch_one

    token = "ghp_SuperSecretToken1234567890"
    response = add(base, admin, "private", "https://140.82.112.3/org/private.git", authType="token",
                   authSecret=token)
    assert response.status_code == 201, response.text
    assert token not in response.text
    repository_id = response.json()["id"]
    for url in (f"{base}/repositories", f"{base}/repositories/{repository_id}"):
        text = requests.get(url, headers=admin, timeout=30).text
        assert token not in text and "authSecret" not in text and "auth_secret" not in text
    raw = fetch_one("SELECT auth_secret FROM repositories WHERE id = %s", (repository_id,))["auth_secret"]
    assert token.encode() not in bytes(raw)
    assert Fernet(str(environment().secret_key).encode()).decrypt(bytes(raw)).decode() == token
    audit = fetch_one("SELECT details::text AS d FROM audit_log WHERE action = 'catalog.repository.add'"
                      " AND target = 'private'")
    assert token not in audit["d"]
    assert repository(base, admin, repository_id)["authType"] == "token"


def test_development_key_is_generated_into_the_data_folder(tmp_path):
    from streamspace.catalog import credentials

    from .conftest import set_env

    old = set_env(STREAMSPACE_SECRET_KEY=None, STREAMSPACE_DATA_DIR=str(tmp_path))
    try:
        sealed = credentials.encrypt("s3cret")
        key_file = Path(tmp_path) / credentials.DEV_KEY_FILE
        assert key_file.exists() and oct(key_file.stat().st_mode & 0o777) == "0o600"
        assert credentials.decrypt(sealed) == "s3cret"
    finally:
        set_env(**old)
    with pytest.raises(credentials.SecretUnavailable):
        credentials.decrypt(sealed)  # another key cannot read it
