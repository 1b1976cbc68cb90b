"""Browsing, searching and installing catalog templates (install goes to the simulated cluster)."""

from __future__ import annotations

import pytest
import requests

from .conftest import deliver_recorded
from .gitrepo import GitRepo, populate_standard, template


@pytest.fixture(scope="module")
def base(serve, sink) -> str:
    return serve("catalog") + "/api/v1/catalog"


@pytest.fixture(scope="module")
def synced(base, admin, sink, catalog_sync, tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("browse")
    first = GitRepo(root / "first")
    populate_standard(first)
    second = GitRepo(root / "second")
    second.write("a.yaml", template("blender", "Blender", category="Graphics", tags=("graphics", "3d"),
                                    description="3D creation suite"))
    second.write("b.yaml", template("inkscape", "Inkscape", category="graphics", tags=("graphics", "vector"),
                                    description="Vector drawing"))
    second.write("c.yaml", template("firefox", "Firefox ESR", category="Web Browsers", tags=("browser",)))
    second.commit()
    sink.take()
    ids = {}
    for name, repo in (("first", first), ("second", second)):
        response = requests.post(f"{base}/repositories", json={"name": name, "url": repo.url}, headers=admin,
                                 timeout=30)
        assert response.status_code == 201
        ids[name] = response.json()["id"]
    assert [r.status_code for r in deliver_recorded(catalog_sync, sink)] == [200, 200]
    return ids


def listing(base, headers, **query) -> dict:
    response = requests.get(f"{base}/templates", params=query, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def names(result: dict) -> list[str]:
    return [t["name"] for t in result["templates"]]


def test_browse_filters_and_search(base, user, synced) -> None:
    everything = listing(base, user)
    assert everything["total"] == 6
    order = [(-t["installCount"], t["name"]) for t in everything["templates"]]
    assert order == sorted(order)  # the most installed first, then by name (installs may come from other tests)
    assert set(names(listing(base, user, category="graphics"))) == {"gimp", "blender", "inkscape"}
    assert set(names(listing(base, user, tag="browser"))) == {"firefox"}
    assert listing(base, user, tag="browser")["total"] == 2  # one per repository
    assert set(names(listing(base, user, q="vector"))) == {"inkscape"}  # description, full text
    assert set(names(listing(base, user, q="fire"))) == {"firefox"}  # prefix
    assert set(names(listing(base, user, q="3d creation"))) == {"blender"}
    assert set(names(listing(base, user, q="ide"))) == {"vscode"}  # a tag
    assert set(names(listing(base, user, q="refo"))) == {"firefox"}  # substring of the name
    assert listing(base, user, q="nothing-like-this")["total"] == 0
    assert listing(base, user, q="100%_ ' \" & | ! :* (")["total"] == 0  # hostile text is just text
    page = listing(base, user, limit=2, offset=2)
    assert page["total"] == 6 and len(page["templates"]) == 2
    beyond = listing(base, user, limit=2, offset=50)
    assert beyond == {"templates": [], "total": 6}
    bad = requests.get(f"{base}/templates", params={"limit": "0"}, headers=user, timeout=30)
    assert bad.status_code == 400
    assert requests.get(f"{base}/templates", timeout=30).status_code == 401


def test_install_creates_the_template_in_the_cluster_and_counts(base, admin, user, synced, sim) -> None:
    from streamspace import kube

    firefox = next(t for t in listing(base, user, repository=synced["first"])["templates"]
                   if t["name"] == "firefox")
    response = requests.post(f"{base}/templates/{firefox['id']}/install", headers=admin, timeout=30)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["name"] == "firefox" and created["namespace"] == "streamspace"
    assert created["displayName"] == "Firefox" and created["vnc"]["port"] == 3000
    assert created["defaultResources"] == {"memory": "2Gi", "cpu": "1000m"}

    obj = kube.get("Template", "firefox", "streamspace")
    assert obj is not None and obj["apiVersion"] == "stream.space/v1alpha1"
    assert obj["spec"]["baseImage"] == "lscr.io/linuxserver/firefox:latest"
    assert obj["metadata"]["labels"]["stream.space/catalog-template"] == "true"
    assert [f["manager"] for f in obj["metadata"].get("managedFields", [])] == ["streamspace"]

    again = requests.post(f"{base}/install", params={"id": firefox["id"]}, headers=admin, timeout=30)
    assert again.status_code == 201
    after = listing(base, user, repository=synced["first"])
    assert {t["name"]: t["installCount"] for t in after["templates"]}["firefox"] == 2
    assert names(listing(base, user))[0] == "firefox"  # most installed first

    # The other repository's firefox updates the same Template object (create or update).
    esr = next(t for t in listing(base, user, repository=synced["second"])["templates"] if t["name"] == "firefox")
    assert requests.post(f"{base}/templates/{esr['id']}/install", headers=admin, timeout=30).status_code == 201
    updated = kube.get("Template", "firefox", "streamspace")
    assert updated is not None and updated["spec"]["displayName"] == "Firefox ESR"


def test_install_refusals(base, admin, user, synced, sim) -> None:
    any_id = listing(base, user)["templates"][0]["id"]
    assert requests.post(f"{base}/templates/{any_id}/install", headers=user, timeout=30).status_code == 403
    missing = "00000000-0000-0000-0000-000000000000"
    assert requests.post(f"{base}/templates/{missing}/install", headers=admin, timeout=30).status_code == 404
    assert requests.post(f"{base}/templates/garbage/install", headers=admin, timeout=30).status_code == 404
    assert requests.post(f"{base}/install", headers=admin, timeout=30).status_code == 400
    assert requests.get(f"{base}/templates/{any_id}", headers=user, timeout=30).json()["id"] == any_id


def test_install_over_a_template_changed_outside_the_catalog_is_a_conflict_unless_overwritten(
        base, admin, user, synced, sim) -> None:
    """The install applies unforced: a field someone else set (here with kubectl edit) is never silently
    undone; the API server's 409 names the manager and field, and overwrite=true takes it back."""
    from kubernetes import client

    from streamspace import kube

    # inkscape: its two installs tie with firefox's in the install-count order, and it sorts after firefox.
    inkscape = next(t for t in listing(base, user, repository=synced["second"])["templates"]
                    if t["name"] == "inkscape")
    url = f"{base}/templates/{inkscape['id']}/install"
    assert requests.post(url, headers=admin, timeout=30).status_code == 201
    api_client = sim.api_client()
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
        "stream.space", "v1alpha1", "streamspace", "templates", "inkscape",
        {"spec": {"displayName": "Inkscape (pinned by ops)"}}, field_manager="kubectl-edit")
    api_client.close()
    installs = {t["name"]: t["installCount"] for t in listing(base, user, repository=synced["second"])["templates"]}

    refused = requests.post(url, headers=admin, timeout=30)
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["error"] == "template changed"
    assert "kubectl-edit" in body["message"] and "displayName" in body["message"]
    assert kube.get("Template", "inkscape", "streamspace")["spec"]["displayName"] == "Inkscape (pinned by ops)"
    after = {t["name"]: t["installCount"] for t in listing(base, user, repository=synced["second"])["templates"]}
    assert after["inkscape"] == installs["inkscape"]

    assert requests.post(url, params={"overwrite": "maybe"}, headers=admin, timeout=30).status_code == 400
    forced = requests.post(url, params={"overwrite": "true"}, headers=admin, timeout=30)
    assert forced.status_code == 201, forced.text
    assert kube.get("Template", "inkscape", "streamspace")["spec"]["displayName"] == "Inkscape"
