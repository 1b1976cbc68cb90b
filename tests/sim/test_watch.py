"""Watch streams: events in order, resume from a resourceVersion, selectors, timeouts, 410 Gone."""

from __future__ import annotations

import threading

from kubernetes import client, watch
from sim_helpers import CEILING, GROUP, PLURAL, VERSION, deployment, eventually, widget

from streamspace.sim import SimCluster


def _collect(func, n: int, **kwargs) -> list[tuple[str, str, dict]]:
    events = []
    w = watch.Watch()
    for ev in w.stream(func, **kwargs):
        obj = ev["raw_object"]
        events.append((ev["type"], obj.get("metadata", {}).get("name"), obj))
        if len(events) >= n:
            w.stop()
            break
    return events


def test_watch_streams_events_and_resumes_from_resource_version(custom, ns):
    start_rv = custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["metadata"]["resourceVersion"]
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("w1"))
    custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w1", {"spec": {"size": 3}})
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("w2"))
    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w1")

    events = _collect(custom.list_namespaced_custom_object, 4, group=GROUP, version=VERSION, namespace=ns,
                      plural=PLURAL, resource_version=start_rv, timeout_seconds=5)
    assert [(t, n) for t, n, _ in events] == [("ADDED", "w1"), ("MODIFIED", "w1"), ("ADDED", "w2"), ("DELETED", "w1")]
    assert events[1][2]["spec"]["size"] == 3
    rvs = [int(o["metadata"]["resourceVersion"]) for _, _, o in events]
    assert rvs == sorted(rvs)

    # Resuming from the MODIFIED event replays only what came after it.
    resumed = _collect(custom.list_namespaced_custom_object, 2, group=GROUP, version=VERSION, namespace=ns,
                       plural=PLURAL, resource_version=str(rvs[1]), timeout_seconds=5)
    assert [(t, n) for t, n, _ in resumed] == [("ADDED", "w2"), ("DELETED", "w1")]

    # Without a resourceVersion the current state comes first as ADDED, then live events.
    live = []
    w = watch.Watch()
    for ev in w.stream(custom.list_namespaced_custom_object, group=GROUP, version=VERSION, namespace=ns,
                       plural=PLURAL, timeout_seconds=CEILING):
        live.append((ev["type"], ev["raw_object"]["metadata"]["name"], ev["raw_object"]))
        if len(live) == 1:  # the snapshot arrived: the watch is open, now change something
            custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w2", {"spec": {"size": 4}})
        else:
            w.stop()
    assert [(t, n) for t, n, _ in live] == [("ADDED", "w2"), ("MODIFIED", "w2")]
    assert live[1][2]["spec"]["size"] == 4


def test_watch_honours_label_selector_and_timeout(core, ns):
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, {"metadata": {"name": "a", "labels": {"pick": "yes"}}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "b", "labels": {"pick": "no"}}})
    # Relabelling out of the selection looks like a deletion to this watcher.
    core.patch_namespaced_config_map("a", ns, {"metadata": {"labels": {"pick": "no"}}})
    # The server ends the stream after timeoutSeconds (nothing here stops it; a stream the server
    # kept open would run into the client's read timeout and fail the test).
    events = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(
        core.list_namespaced_config_map, ns, label_selector="pick=yes", resource_version=rv, timeout_seconds=1,
        _request_timeout=CEILING)]
    assert events == [("ADDED", "a"), ("DELETED", "a")]


def test_watch_deployments_with_typed_objects(apps, ns):
    rv = apps.list_namespaced_deployment(ns).metadata.resource_version
    apps.create_namespaced_deployment(ns, deployment("wd"))
    w = watch.Watch()
    seen = []
    for ev in w.stream(apps.list_namespaced_deployment, ns, resource_version=rv, timeout_seconds=5):
        assert isinstance(ev["object"], client.V1Deployment)
        seen.append((ev["type"], ev["object"].status.ready_replicas))
        if ev["object"].status.ready_replicas == 1:
            w.stop()
            break
    assert seen[0] == ("ADDED", None) and seen[-1] == ("MODIFIED", 1)


def test_watch_from_resource_version_older_than_history_gets_410():
    with SimCluster(crd_paths=(), history_size=5) as small:
        core = client.CoreV1Api(small.api_client())
        first = core.create_namespaced_config_map("default", {"metadata": {"name": "c0"}})
        for i in range(1, 10):
            core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
        resp = core.list_namespaced_config_map("default", watch=True, resource_version=first.metadata.resource_version,
                                               _preload_content=False)
        line = resp.readline() if hasattr(resp, "readline") else resp.read().split(b"\n")[0]
        import json

        event = json.loads(line)
        assert event["type"] == "ERROR" and event["object"]["code"] == 410
        assert event["object"]["reason"] == "Expired"


def test_watch_is_not_blocking_other_requests(sim, custom, core, ns):
    w = watch.Watch()
    got: list[str] = []
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    watches_before = sim.count("GET", f"/namespaces/{ns}/configmaps")

    def watcher() -> None:
        for ev in w.stream(core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=CEILING):
            got.append(ev["object"].metadata.name)
            w.stop()

    thread = threading.Thread(target=watcher)
    thread.start()
    # The server records a watch when it starts streaming it: from then on it holds a connection open.
    eventually(lambda: sim.count("GET", f"/namespaces/{ns}/configmaps") > watches_before, "the watch never opened")
    # With the watch open, other requests are still answered (a client read timeout would fail this).
    custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, _request_timeout=CEILING)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "ping"}}, _request_timeout=CEILING)
    thread.join(CEILING)
    assert got == ["ping"]
