"""A repository written for the earlier StreamSpace syncs whole: free-form capabilities become tags,
names that break the name rule are renamed, and the catalog shows both changes to the user."""

from __future__ import annotations

from pathlib import Path

import requests

from .conftest import deliver_recorded
from .gitrepo import GitRepo

EARLIER = Path(__file__).resolve().parents[1] / "upgrade" / "earlier"


def test_earlier_templates_sync_with_their_changes_shown(serve, sink, admin, user, catalog_sync, tmp_path):
    base = serve("catalog") + "/api/v1/catalog"
    repo = GitRepo(tmp_path / "earlier")
    for name in ("gimp.yaml", "vscode.yaml", "changedetection.yaml"):
        repo.write(name, (EARLIER / name).read_text())
    repo.commit("earlier templates")
    sink.take()
    created = requests.post(f"{base}/repositories", json={"name": "earlier", "url": repo.url}, headers=admin,
                            timeout=30)
    assert created.status_code == 201, created.text
    assert [r.status_code for r in deliver_recorded(catalog_sync, sink)] == [200]

    repository = requests.get(f"{base}/repositories/{created.json()['id']}", headers=admin, timeout=30).json()
    assert repository["status"] == "synced", repository
    assert repository["templateCount"] == 4
    listing = requests.get(f"{base}/templates", params={"repository": created.json()["id"]}, headers=user,
                           timeout=30).json()
    by_name = {t["name"]: t for t in listing["templates"]}
    assert set(by_name) == {"gimp", "vscode", "chrome", "changedetection-io"}

    gimp = by_name["gimp"]
    assert gimp["manifest"]["spec"]["capabilities"] == ["Network", "Clipboard"]
    assert gimp["tags"] == ["graphics", "Graphics", "Photo-Editing", "Tablets", "Color-Management"]
    assert gimp["originalName"] is None
    assert gimp["conversionNotes"] == [
        "spec.capabilities: unknown capabilities Graphics, Photo-Editing, Tablets, Color-Management are kept as "
        "tags (capabilities are Network, Audio, Clipboard, USB, Printing)"
    ]
    renamed = by_name["changedetection-io"]
    assert renamed["originalName"] == "changedetection.io"
    assert renamed["conversionNotes"] == [
        "metadata.name: 'changedetection.io' is not a DNS-1123 label; renamed to 'changedetection-io'"
    ]
    assert by_name["chrome"]["tags"] == ["WebGL"]
