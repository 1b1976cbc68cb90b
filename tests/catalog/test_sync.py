"""Repositories and catalog-sync end to end: real git repositories (file:// URLs), the catalog function
over HTTP, the events it emits recorded at K_SINK and delivered to catalog-sync over HTTP."""

from __future__ import annotations

import json
import threading

import pytest
import requests

from .conftest import deliver_recorded, ping, sync_requested
from .gitrepo import GitRepo, populate_standard, template


@pytest.fixture(scope="module")
def base(serve, sink) -> str:
    return serve("catalog") + "/api/v1/catalog"


def add(base: str, admin: dict, name: str, url: str, **extra) -> requests.Response:
    return requests.post(f"{base}/repositories", json={"name": name, "url": url, **extra}, headers=admin, timeout=30)


def repository(base: str, admin: dict, repository_id: str) -> dict:
    response = requests.get(f"{base}/repositories/{repository_id}", headers=admin, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def catalog(base: str, headers: dict, **query) -> dict:
    response = requests.get(f"{base}/templates", params=query, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def names(listing: dict) -> list[str]:
    return sorted(t["name"] for t in listing["templates"])


def test_added_repository_syncs_through_the_requested_event(base, admin, user, sink, catalog_sync, tmp_path):
    repo = GitRepo(tmp_path / "standard")
    commit = populate_standard(repo)
    sink.take()
    response = add(base, admin, "standard", repo.url)
    assert response.status_code == 201, response.text
    repository_id = response.json()["id"]
    assert repository(base, admin, repository_id)["status"] == "pending"

    events = sink.take()
    assert len(events) == 1
    headers, body = events[0]
    assert headers["ce-type"] == "io.streamspace.catalog.sync.requested"
    assert json.loads(body) == {"repositoryId": repository_id}
    from .conftest import deliver

    assert deliver(catalog_sync, headers, body).status_code == 200

    repo_json = repository(base, admin, repository_id)
    assert repo_json["status"] == "synced", repo_json
    assert repo_json["templateCount"] == 3
    assert repo_json["lastCommit"] == commit
    assert repo_json["lastSync"] is not None and repo_json["errorMessage"] == ""
    assert repo_json["syncRequested"] is False
    errors = {(e["path"], e.get("document")): e["message"] for e in repo_json["fileErrors"]}
    assert repo_json["fileErrorCount"] == 4
    assert set(errors) == {("templates/multi.yaml", 3), ("invalid/syntax.yaml", None),
                           ("invalid/no-port.yaml", None), ("invalid/bomb.yaml", None)}
    assert "baseImage" in errors[("templates/multi.yaml", 3)]
    assert "YAML syntax error" in errors[("invalid/syntax.yaml", None)]
    assert "stream port" in errors[("invalid/no-port.yaml", None)]
    assert "alias" in errors[("invalid/bomb.yaml", None)]

    listing = catalog(base, user, repository=repository_id)
    assert listing["total"] == 3
    assert names(listing) == ["firefox", "gimp", "vscode"]
    by_name = {t["name"]: t for t in listing["templates"]}
    firefox = by_name["firefox"]
    assert firefox["displayName"] == "Firefox" and firefox["category"] == "Web Browsers"
    assert firefox["tags"] == ["firefox", "browser"] and firefox["installCount"] == 0
    assert firefox["repository"]["name"] == "standard" and firefox["repository"]["url"] == repo.url
    manifest = firefox["manifest"]
    assert manifest["apiVersion"] == "stream.space/v1alpha1"  # legacy group normalised
    assert "namespace" not in manifest["metadata"]
    assert manifest["spec"]["vnc"]["port"] == 3000 and "kasmvnc" not in manifest["spec"]
    assert manifest["spec"]["defaultResources"]["limits"] == {"memory": "2Gi", "cpu": "1000m"}
    assert by_name["vscode"]["appType"] == "webapp"
    assert by_name["vscode"]["manifest"]["spec"]["defaultResources"]["requests"] == {"memory": "1Gi", "cpu": "500m"}


def _standard(base, admin, sink, catalog_sync, tmp_path, name) -> tuple[GitRepo, str]:
    repo = GitRepo(tmp_path / name)
    populate_standard(repo)
    sink.take()
    response = add(base, admin, name, repo.url)
    assert response.status_code == 201, response.text
    assert [r.status_code for r in deliver_recorded(catalog_sync, sink)] == [200]
    return repo, response.json()["id"]


def test_resync_after_a_new_commit_updates_rows_and_keeps_install_counts(base, admin, user, sink, catalog_sync,
                                                                        tmp_path):
    from streamspace.db import execute, fetch_all

    repo, repository_id = _standard(base, admin, sink, catalog_sync, tmp_path, "evolving")
    execute("UPDATE catalog_templates SET install_count = 7 WHERE repository_id = %s AND name = 'vscode'",
            (repository_id,))
    ids_before = {r["name"]: r["id"] for r in fetch_all(
        "SELECT id, name FROM catalog_templates WHERE repository_id = %s", (repository_id,))}

    repo.write("templates/vscode.yml", (tmp_path / "evolving" / "templates" / "vscode.yml").read_text()
               .replace("displayName: VS Code", "displayName: VS Code Server"))
    repo.remove("templates/multi.yaml")
    repo.write("new/chromium.yaml", template("chromium", "Chromium", category="Web Browsers", tags=("browser",)))
    commit = repo.commit("second")

    response = requests.post(f"{base}/repositories/{repository_id}/sync", headers=admin, timeout=30)
    assert response.status_code == 202
    assert response.json()["status"] == "syncing"
    assert [r.status_code for r in deliver_recorded(catalog_sync, sink)] == [200]

    repo_json = repository(base, admin, repository_id)
    assert repo_json["status"] == "synced" and repo_json["lastCommit"] == commit
    assert repo_json["templateCount"] == 3 and repo_json["fileErrorCount"] == 3
    listing = catalog(base, user, repository=repository_id)
    assert names(listing) == ["chromium", "firefox", "vscode"]
    by_name = {t["name"]: t for t in listing["templates"]}
    assert by_name["vscode"]["displayName"] == "VS Code Server"
    assert by_name["vscode"]["installCount"] == 7  # kept across the upsert
    assert by_name["vscode"]["id"] == str(ids_before["vscode"])  # same row, updated in place
    assert listing["templates"][0]["name"] == "vscode"  # most installed first
    rows = fetch_all("SELECT name, count(*) AS n FROM catalog_templates WHERE repository_id = %s GROUP BY name",
                     (repository_id,))
    assert all(r["n"] == 1 for r in rows)


def test_a_failing_repository_keeps_its_last_good_catalog(base, admin, user, sink, catalog_sync, tmp_path):
    repo, repository_id = _standard(base, admin, sink, catalog_sync, tmp_path, "fragile")
    good = repository(base, admin, repository_id)

    repo.rename_branch("renamed")  # the configured branch no longer exists
    assert sync_requested(catalog_sync, {"repositoryId": repository_id}).status_code == 200
    failed = repository(base, admin, repository_id)
    assert failed["status"] == "failed"
    assert "branch 'main' does not exist" in failed["errorMessage"]
    assert failed["templateCount"] == 3 and failed["lastSync"] == good["lastSync"]
    assert failed["lastCommit"] == good["lastCommit"]
    assert names(catalog(base, user, repository=repository_id)) == ["firefox", "gimp", "vscode"]

    repo.rename_branch("main")
    gone = repo.move_away()  # the URL no longer answers
    assert sync_requested(catalog_sync, {"repositoryId": repository_id}).status_code == 200
    failed = repository(base, admin, repository_id)
    assert failed["status"] == "failed" and "repository not found" in failed["errorMessage"]
    assert names(catalog(base, user, repository=repository_id)) == ["firefox", "gimp", "vscode"]

    repo.move_back(gone)
    assert sync_requested(catalog_sync, {"repositoryId": repository_id}).status_code == 200
    assert repository(base, admin, repository_id)["status"] == "synced"


def test_a_repository_without_templates_fails_and_keeps_nothing_stale(base, admin, sink, catalog_sync, tmp_path):
    repo = GitRepo(tmp_path / "empty")
    repo.write("README.md", "nothing here\n").write("bad.yaml", "kind: Template\nmetadata: {name: x}\n")
    repo.commit()
    sink.take()
    repository_id = add(base, admin, "empty", repo.url).json()["id"]
    deliver_recorded(catalog_sync, sink)
    repo_json = repository(base, admin, repository_id)
    assert repo_json["status"] == "failed"
    assert "no valid Template manifests" in repo_json["errorMessage"]
    assert repo_json["fileErrorCount"] == 1 and repo_json["fileErrors"][0]["path"] == "bad.yaml"
    assert "apiVersion" in repo_json["fileErrors"][0]["message"]


def test_repositories_sync_independently(base, admin, sink, catalog_sync, tmp_path):
    good = GitRepo(tmp_path / "indep-good")
    good.write("t.yaml", template("indep-one")).commit()
    bad = GitRepo(tmp_path / "indep-bad")
    bad.write("t.yaml", template("indep-two")).commit()
    sink.take()
    bad_id = add(base, admin, "indep-bad", bad.url, branch="does-not-exist").json()["id"]
    good_id = add(base, admin, "indep-good", good.url).json()["id"]
    sink.take()

    response = requests.post(f"{base}/sync", headers=admin, timeout=30)
    assert response.status_code == 202 and response.json()["status"] == "syncing"
    events = sink.take()
    assert len(events) == 1 and json.loads(events[0][1]) == {"all": True}
    from .conftest import deliver

    assert deliver(catalog_sync, *events[0]).status_code == 200
    assert repository(base, admin, good_id)["status"] == "synced"
    bad_json = repository(base, admin, bad_id)
    assert bad_json["status"] == "failed" and "does-not-exist" in bad_json["errorMessage"]


def test_the_tick_syncs_only_due_repositories(base, admin, sink, catalog_sync, tmp_path):
    from streamspace.db import execute

    from .conftest import one as fetch_one

    _, due_id = _standard(base, admin, sink, catalog_sync, tmp_path, "tick-due")
    _, fresh_id = _standard(base, admin, sink, catalog_sync, tmp_path, "tick-fresh")
    execute("UPDATE repositories SET last_attempt_at = now() - interval '1 day' WHERE id = %s", (due_id,))
    # Repositories of the other tests are fresh too; only the stale one is due.
    before = fetch_one("SELECT last_attempt_at FROM repositories WHERE id = %s", (fresh_id,))
    assert ping(catalog_sync).status_code == 200
    due = fetch_one("SELECT last_attempt_at, status FROM repositories WHERE id = %s", (due_id,))
    fresh = fetch_one("SELECT last_attempt_at FROM repositories WHERE id = %s", (fresh_id,))
    assert due["status"] == "synced" and due["last_attempt_at"] > before["last_attempt_at"]
    assert fresh["last_attempt_at"] == before["last_attempt_at"]


def test_a_request_without_an_event_is_honoured_by_the_next_tick(base, admin, sink, catalog_sync, tmp_path):
    """No K_SINK delivery (event lost): the recorded request makes the repository due."""
    from .conftest import one as fetch_one

    repo, repository_id = _standard(base, admin, sink, catalog_sync, tmp_path, "lost-event")
    repo.write("extra.yaml", template("lost-event-extra")).commit()
    assert requests.post(f"{base}/repositories/{repository_id}/sync", headers=admin, timeout=30).status_code == 202
    sink.take()  # the broker lost it
    assert fetch_one("SELECT sync_requested_at FROM repositories WHERE id = %s", (repository_id,))["sync_requested_at"]
    assert ping(catalog_sync).status_code == 200
    repo_json = repository(base, admin, repository_id)
    assert repo_json["templateCount"] == 4 and repo_json["syncRequested"] is False


def test_concurrent_syncs_take_one_lease_and_never_duplicate_rows(base, admin, sink, catalog_sync, tmp_path):
    from streamspace.catalog.sync import acquire_lease, sync_repository
    from streamspace.db import execute, fetch_all

    _, repository_id = _standard(base, admin, sink, catalog_sync, tmp_path, "contended")
    barrier = threading.Barrier(8)
    leases: list = []

    def take(i: int) -> None:
        barrier.wait()
        leases.append(acquire_lease(repository_id, f"worker-{i}"))

    threads = [threading.Thread(target=take, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    held = [lease for lease in leases if lease is not None]
    assert len(held) == 1
    owner = fetch_all("SELECT lease_owner, status FROM repositories WHERE id = %s", (repository_id,))[0]
    assert owner["lease_owner"] == held[0].owner and owner["status"] == "syncing"
    # While the lease is held, every other sync stands back.
    assert sync_repository(repository_id).status == "busy"
    execute("UPDATE repositories SET lease_owner = NULL, lease_expires_at = NULL WHERE id = %s", (repository_id,))

    outcomes: list = []
    barrier = threading.Barrier(6)

    def run() -> None:
        barrier.wait()
        outcomes.append(sync_repository(repository_id))

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {o.status for o in outcomes} <= {"synced", "busy"} and any(o.status == "synced" for o in outcomes)
    rows = fetch_all("SELECT name FROM catalog_templates WHERE repository_id = %s ORDER BY name", (repository_id,))
    assert [r["name"] for r in rows] == ["firefox", "gimp", "vscode"]


def test_an_expired_lease_is_taken_over(base, admin, sink, catalog_sync, tmp_path):
    from streamspace.catalog.parse import ParseResult
    from streamspace.catalog.sync import acquire_lease, replace_catalog
    from streamspace.db import execute

    _, repository_id = _standard(base, admin, sink, catalog_sync, tmp_path, "crashed")
    crashed = acquire_lease(repository_id, "crashed-worker")
    assert crashed is not None
    assert sync_requested(catalog_sync, {"repositoryId": repository_id}).status_code == 200
    assert repository(base, admin, repository_id)["status"] == "syncing"  # held: the request stood back
    execute("UPDATE repositories SET lease_expires_at = now() - interval '1 second' WHERE id = %s", (repository_id,))
    assert ping(catalog_sync).status_code == 200  # a syncing repository with an expired lease is due
    assert repository(base, admin, repository_id)["status"] == "synced"
    # The crashed worker waking up late cannot overwrite the newer result.
    assert replace_catalog(crashed, ParseResult(), "0" * 40) is False
    assert repository(base, admin, repository_id)["templateCount"] == 3


def test_bad_events_are_refused_without_retry(catalog_sync):
    assert sync_requested(catalog_sync, {"repositoryId": "not-a-uuid"}).status_code == 400
    assert sync_requested(catalog_sync, {"something": "else"}).status_code == 400
    assert sync_requested(catalog_sync, ["x"]).status_code == 400
    assert sync_requested(catalog_sync, {"repositoryId": "00000000-0000-0000-0000-000000000000"}).status_code == 200


def test_delete_removes_the_repository_and_its_catalog_rows(base, admin, sink, catalog_sync, tmp_path):
    from .conftest import one as fetch_one

    _, repository_id = _standard(base, admin, sink, catalog_sync, tmp_path, "doomed")
    response = requests.delete(f"{base}/repositories/{repository_id}", headers=admin, timeout=30)
    assert response.status_code == 200
    assert requests.get(f"{base}/repositories/{repository_id}", headers=admin, timeout=30).status_code == 404
    count = fetch_one("SELECT count(*) AS n FROM catalog_templates WHERE repository_id = %s", (repository_id,))
    assert count["n"] == 0
    assert requests.delete(f"{base}/repositories/{repository_id}", headers=admin, timeout=30).status_code == 404
    assert requests.delete(f"{base}/repositories/nope", headers=admin, timeout=30).status_code == 404
    assert requests.post(f"{base}/repositories/{repository_id}/sync", headers=admin, timeout=30).status_code == 404
    audit = fetch_one("SELECT actor, target FROM audit_log WHERE action = 'catalog.repository.delete'"
                      " ORDER BY id DESC LIMIT 1")
    assert audit["actor"] == "catalog-admin" and audit["target"] == "doomed"
