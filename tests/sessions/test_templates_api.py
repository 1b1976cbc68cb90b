"""The templates function: Template objects through the REST contract; writes are admin-only."""

from __future__ import annotations

from typing import Any

from .conftest import NAMESPACE, World, put_template

VSCODE = {
    "name": "vscode",
    "displayName": "VS Code",
    "description": "code-server in the browser",
    "category": "Development",
    "appType": "webapp",
    "icon": "https://example.com/vscode.png",
    "baseImage": "lscr.io/linuxserver/code-server:latest",
    "defaultResources": {"memory": "2Gi", "cpu": "1"},
    "ports": [{"name": "http", "containerPort": 8443, "protocol": "TCP"}],
    "env": [{"name": "TZ", "value": "Etc/UTC"}],
    "tags": ["ide", "dev"],
    "capabilities": ["Network", "Clipboard"],
}


def test_template_crud(world: World) -> None:
    from streamspace import kube

    admin = world.admin
    created = admin.post("/api/v1/templates", json=VSCODE)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "vscode" and body["namespace"] == NAMESPACE
    assert body["displayName"] == "VS Code" and body["appType"] == "webapp"
    assert body["defaultResources"] == {"memory": "2Gi", "cpu": "1"}
    assert body["ports"] == [{"name": "http", "containerPort": 8443, "protocol": "TCP"}]
    obj = kube.get("Template", "vscode", NAMESPACE)
    assert obj is not None and obj["spec"]["baseImage"] == VSCODE["baseImage"]

    again = admin.post("/api/v1/templates", json=VSCODE)
    assert again.status_code == 409 and "already exists" in again.json()["message"]

    got = world.alice.get("/api/v1/templates/vscode")
    assert got.status_code == 200 and got.json()["tags"] == ["ide", "dev"]

    patched = admin.patch("/api/v1/templates/vscode", json={"description": "VS Code, streamed",
                                                              "defaultResources": {"memory": "4Gi"}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["description"] == "VS Code, streamed"
    assert patched.json()["defaultResources"] == {"memory": "4Gi", "cpu": "1"}
    assert patched.json()["displayName"] == "VS Code"  # untouched fields stay
    removed = admin.patch("/api/v1/templates/vscode", json={"icon": None})
    assert removed.status_code == 200 and removed.json()["icon"] == ""

    bad = admin.patch("/api/v1/templates/vscode", json={"ports": [{"name": "http", "containerPort": 70000}]})
    assert bad.status_code == 400 and "containerPort" in bad.json()["error"]
    renamed = admin.patch("/api/v1/templates/vscode", json={"name": "other"})
    assert renamed.status_code == 400
    assert admin.patch("/api/v1/templates/nope", json={"description": "x"}).status_code == 404

    deleted = admin.delete("/api/v1/templates/vscode")
    assert deleted.status_code == 200 and "message" in deleted.json()
    assert kube.get("Template", "vscode", NAMESPACE) is None
    assert admin.delete("/api/v1/templates/vscode").status_code == 404
    assert world.alice.get("/api/v1/templates/vscode").status_code == 404


def test_writes_are_admin_only(world: World) -> None:
    put_template("gimp")
    alice = world.alice
    assert alice.post("/api/v1/templates", json={**VSCODE, "name": "mine"}).status_code == 403
    assert alice.patch("/api/v1/templates/gimp", json={"description": "x"}).status_code == 403
    assert alice.delete("/api/v1/templates/gimp").status_code == 403
    assert world.anonymous.get("/api/v1/templates").status_code == 401
    assert alice.get("/api/v1/templates/gimp").json()["description"] == "gimp for tests"


def test_create_refuses_bad_templates(world: World) -> None:
    admin = world.admin
    cases: list[tuple[dict[str, Any], str]] = [
        ({**VSCODE, "name": "Bad Name"}, "invalid name"),
        ({**VSCODE, "name": "x1", "baseImage": ""}, "invalid baseImage"),
        ({**VSCODE, "name": "x2", "appType": "game"}, "invalid appType"),
        ({**VSCODE, "name": "x3", "defaultResources": {"memory": "huge"}}, "invalid defaultResources.memory"),
        ({**VSCODE, "name": "x4", "status": {"phase": "Ready"}, "secret": 1}, "invalid secret"),
    ]
    for body, error in cases:
        response = admin.post("/api/v1/templates", json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"] == error, response.text
    assert admin.post("/api/v1/templates", data="nope", headers={"Content-Type": "application/json"}
                      ).status_code == 400


def test_list_filters(world: World) -> None:
    put_template("chromium", category="Web Browsers", tags=("browser", "google"))
    put_template("libreoffice", category="Office", tags=("office",))
    put_template("jupyter", category="Development", tags=("notebook",), app_type="webapp")
    alice = world.alice
    everything = alice.get("/api/v1/templates").json()
    assert everything["total"] == len(everything["templates"]) >= 3
    names = [t["name"] for t in everything["templates"]]
    assert names == sorted(names)
    office = alice.get("/api/v1/templates", params={"category": "Office"}).json()
    assert [t["name"] for t in office["templates"]] == ["libreoffice"]
    tagged = alice.get("/api/v1/templates", params={"tag": "google"}).json()
    assert [t["name"] for t in tagged["templates"]] == ["chromium"]
    webapps = alice.get("/api/v1/templates", params={"appType": "webapp"}).json()
    assert [t["name"] for t in webapps["templates"]] == ["jupyter"]
    assert alice.get("/api/v1/templates", params={"appType": "game"}).status_code == 400
    paged = alice.get("/api/v1/templates", params={"limit": 1, "offset": 1}).json()
    assert len(paged["templates"]) == 1 and paged["total"] == everything["total"]
    assert paged["templates"][0]["name"] == names[1]
    status = alice.get("/api/v1/templates/chromium").json()["status"]
    assert status == {"phase": "Ready", "message": ""}


def _patch_while_another_write_lands(world: World, sim: Any, name: str, other_write: Any) -> Any:
    """PATCH the Template through the API with `other_write` landing between its read and its replace."""
    import threading

    held = sim.hold_requests("PUT", rf"/templates/{name}$")
    answers: list[Any] = []
    change = threading.Thread(target=lambda: answers.append(
        world.admin.patch(f"/api/v1/templates/{name}", json={"description": "changed"})))
    change.start()
    try:
        assert held.arrived.wait(60), "the replace never reached the API server"
        other_write()
    finally:
        held.release()
        change.join(60)
    assert answers, "the PATCH never answered"
    return answers[0]


def test_an_update_racing_only_a_status_write_is_applied_on_the_fresh_copy(world: World, sim: Any) -> None:
    """template-reconcile writes pool and pre-pull status all the time; an admin's change must not be
    refused because a status write landed between the API's read and its write."""
    from streamspace import kube

    put_template("krita")
    response = _patch_while_another_write_lands(world, sim, "krita", lambda: kube.merge_patch(
        "Template", "krita", {"status": {"message": "a controller's report"}}, NAMESPACE, subresource="status"))
    assert response.status_code == 200, response.text
    stored = kube.get("Template", "krita", NAMESPACE)
    assert stored is not None and stored["spec"]["description"] == "changed"
    assert stored["status"]["message"] == "a controller's report"


def test_an_update_racing_another_spec_change_is_still_a_conflict(world: World, sim: Any) -> None:
    from streamspace import kube

    put_template("krita")
    response = _patch_while_another_write_lands(world, sim, "krita", lambda: kube.merge_patch(
        "Template", "krita", {"spec": {"displayName": "Someone else's name"}}, NAMESPACE))
    assert response.status_code == 409 and "read it again" in response.json()["message"]
    stored = kube.get("Template", "krita", NAMESPACE)
    assert stored is not None and stored["spec"]["displayName"] == "Someone else's name"
    assert stored["spec"].get("description") != "changed"


def test_the_api_refuses_names_the_crd_refuses_and_says_how_to_fix_them(world: World) -> None:
    from streamspace import kube

    refused = world.admin.post("/api/v1/templates", json={**VSCODE, "name": "changedetection.io"})
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid name"
    assert "DNS-1123 label" in refused.json()["message"]
    assert kube.get("Template", "changedetection.io", NAMESPACE) is None
    launch = world.alice.post("/api/v1/sessions", json={"template": "changedetection.io"})
    assert launch.status_code == 400
    assert "DNS-1123 label" in launch.json()["message"]


def test_a_disabled_template_is_hidden_from_users_cannot_be_launched_and_leaves_sessions_running(world: World) -> None:
    from streamspace import kube
    from streamspace.db import fetch_all

    put_template("retired")
    admin, alice = world.admin, world.alice
    started = alice.post("/api/v1/sessions", json={"template": "retired"})
    assert started.status_code == 201, started.text
    session = started.json()["name"]

    assert admin.patch("/api/v1/templates/retired", json={"enabled": "no"}).status_code == 400  # nothing changes
    assert alice.get("/api/v1/templates/retired").json()["enabled"] is True
    disabled = admin.patch("/api/v1/templates/retired", json={"enabled": False})
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    assert kube.get("Template", "retired", NAMESPACE)["spec"]["enabled"] is False
    audit = fetch_all("SELECT details FROM audit_log WHERE action = 'template.update' AND target = 'retired'")
    assert audit[-1]["details"] == {"fields": ["enabled"], "enabled": False}

    # Users: gone from the catalog, and not readable either.
    assert "retired" not in [t["name"] for t in alice.get("/api/v1/templates").json()["templates"]]
    assert alice.get("/api/v1/templates?enabled=false").json() == {"templates": [], "total": 0}
    assert alice.get("/api/v1/templates/retired").status_code == 404
    # Admins: still there, marked disabled, and filterable.
    assert [t["name"] for t in admin.get("/api/v1/templates?enabled=false").json()["templates"]] == ["retired"]
    assert "retired" not in [t["name"] for t in admin.get("/api/v1/templates?enabled=true").json()["templates"]]
    assert admin.get("/api/v1/templates/retired").json()["enabled"] is False
    assert admin.get("/api/v1/templates?enabled=maybe").status_code == 400

    # Nobody launches it, admins included; nothing is created.
    sessions_before = len(kube.list_objects("Session", NAMESPACE))
    for who in (alice, admin):
        refused = who.post("/api/v1/sessions", json={"template": "retired"})
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"] == "template disabled"
        assert "disabled by an administrator" in refused.json()["message"]
    assert len(kube.list_objects("Session", NAMESPACE)) == sessions_before

    # The session started before goes on: it hibernates and wakes as before.
    assert alice.patch(f"/api/v1/sessions/{session}", json={"state": "hibernated"}).status_code == 200
    woken = alice.patch(f"/api/v1/sessions/{session}", json={"state": "running"})
    assert woken.status_code == 200 and woken.json()["state"] == "running"

    # Enabled again: back in the catalog and launchable.
    assert admin.patch("/api/v1/templates/retired", json={"enabled": True}).json()["enabled"] is True
    assert "retired" in [t["name"] for t in alice.get("/api/v1/templates").json()["templates"]]
    assert alice.post("/api/v1/sessions", json={"template": "retired"}).status_code == 201


def test_prepull_is_read_and_written_and_a_non_boolean_is_refused(world: World) -> None:
    from streamspace import kube

    put_template("prepulled")
    admin = world.admin
    assert admin.get("/api/v1/templates/prepulled").json()["prePull"] is False
    before = kube.get("Template", "prepulled", NAMESPACE)
    for bad in ("yes", 1, {"on": True}):
        refused = admin.patch("/api/v1/templates/prepulled", json={"prePull": bad})
        assert refused.status_code == 400 and "prePull" in refused.text, (bad, refused.text)
    after = kube.get("Template", "prepulled", NAMESPACE)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]  # nothing changed
    turned_on = admin.patch("/api/v1/templates/prepulled", json={"prePull": True})
    assert turned_on.status_code == 200 and turned_on.json()["prePull"] is True
    assert kube.get("Template", "prepulled", NAMESPACE)["spec"]["prePull"] is True
    created = admin.post("/api/v1/templates", json={
        "name": "prepulled-new", "displayName": "New", "baseImage": "example.org/new:1", "prePull": "true",
        "ports": [{"name": "vnc", "containerPort": 3000}]})
    assert created.status_code == 400 and kube.get("Template", "prepulled-new", NAMESPACE) is None
    turned_off = admin.patch("/api/v1/templates/prepulled", json={"prePull": False})
    assert turned_off.json()["prePull"] is False and "prePull" not in kube.get(
        "Template", "prepulled", NAMESPACE)["spec"]
