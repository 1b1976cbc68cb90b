"""GET /api/v1/templates is served from a watched list of Templates (one LIST, then a watch): what
others change appears once its watch event arrives, what this process writes appears at once."""

from __future__ import annotations

from typing import Any

from tests.sim.sim_helpers import eventually

from .conftest import NAMESPACE, World, template_manifest

GROUP, VERSION, PLURAL = "stream.space", "v1alpha1", "templates"


def _listed(world: World) -> dict[str, dict[str, Any]]:
    response = world.alice.get("/api/v1/templates?limit=1000")
    assert response.status_code == 200, response.text
    return {t["name"]: t for t in response.json()["templates"]}


def test_a_template_another_client_changes_is_listed_as_its_watch_event_arrives(world: World, sim: Any) -> None:
    from kubernetes import client

    custom = client.CustomObjectsApi(sim.api_client())  # another writer: the official client, not our kube
    _listed(world)  # the first list starts the function's watch
    custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, template_manifest("elsewhere"))
    eventually(lambda: "elsewhere" in _listed(world), "a Template created by another client is listed")

    custom.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "elsewhere",
                                          {"spec": {"description": "changed elsewhere"}})
    eventually(lambda: _listed(world)["elsewhere"]["description"] == "changed elsewhere",
               "a change by another client is listed")

    custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "elsewhere")
    eventually(lambda: "elsewhere" not in _listed(world), "a Template deleted by another client is gone")


def test_the_function_lists_its_own_writes_at_once(world: World) -> None:
    admin = world.admin
    _listed(world)
    body = {"name": "mine", "displayName": "Mine", "baseImage": "lscr.io/linuxserver/firefox:latest",
            "category": "Web Browsers", "defaultResources": {"memory": "1Gi", "cpu": "500m"},
            "ports": [{"name": "vnc", "containerPort": 3000, "protocol": "TCP"}]}
    for _ in range(3):  # each write must be visible to the very next list, every time
        assert admin.post("/api/v1/templates", json=body).status_code == 201
        assert _listed(world)["mine"]["displayName"] == "Mine"
        assert admin.patch("/api/v1/templates/mine", json={"displayName": "Renamed"}).status_code == 200
        assert _listed(world)["mine"]["displayName"] == "Renamed"
        assert admin.delete("/api/v1/templates/mine").status_code == 200
        assert "mine" not in _listed(world)


def test_a_list_in_sync_asks_the_api_server_nothing(world: World, sim: Any) -> None:
    from streamspace import kube

    _listed(world)
    kube.create(template_manifest("counted"))

    def answered_without_the_api_server() -> bool:
        sim.clear_requests()
        found = "counted" in _listed(world)
        return found and sim.count(path_contains="/templates") == 0

    eventually(answered_without_the_api_server, "a list answered from the watched Templates")
    kube.delete("Template", "counted", NAMESPACE)


def test_a_write_returns_only_once_the_writers_watched_list_shows_it(sim: Any) -> None:
    """Read-your-writes without a round trip in between: checked on the watched list itself, right
    after each write returns (an HTTP request afterwards would give the watch time to catch up)."""
    from streamspace import kube

    watched = kube.watched_list("Template", NAMESPACE)
    assert watched.wait_synced(30)

    def names() -> set[str]:
        snapshot = watched.snapshot()
        assert snapshot is not None
        return {obj["metadata"]["name"] for obj in snapshot[1]}

    for number in range(10):
        name = f"own-{number}"
        kube.create(template_manifest(name))
        assert name in names()
        kube.merge_patch("Template", name, {"spec": {"description": "patched"}}, NAMESPACE)
        snapshot = watched.snapshot()
        assert snapshot is not None
        assert next(o for o in snapshot[1] if o["metadata"]["name"] == name)["spec"]["description"] == "patched"
        kube.delete("Template", name, NAMESPACE)
        assert name not in names()


def test_the_first_list_of_a_process_is_the_one_its_watch_starts_from(world: World, sim: Any) -> None:
    """A cold start's first list of Templates waits for the LIST its watched list begins with instead of
    sending a second one beside it (a cold start asks the API server once, then watches)."""
    from streamspace import kube

    kube.create(template_manifest("first-listed"))
    kube.reset_client()  # a new process: no watched list yet
    sim.clear_requests()
    assert "first-listed" in _listed(world)
    lists = [r for r in sim.requests if r.method == "GET" and r.path.endswith(f"/namespaces/{NAMESPACE}/{PLURAL}")
             and "watch=true" not in r.query]
    assert len(lists) == 1, lists
    kube.delete("Template", "first-listed", NAMESPACE)
