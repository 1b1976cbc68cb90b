"""A simulated cluster with a state file keeps its objects across restarts, like an API server
backed by etcd: the same objects, uids and resourceVersions, later writes get higher versions,
watches from before the restart get 410 Gone, custom resources stay served."""

from __future__ import annotations

import json
from pathlib import Path

from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from sim_helpers import CEILING, GROUP, PLURAL, VERSION, WIDGET_CRD, deployment, widget

from streamspace.sim import SimCluster


def _cluster(state: Path, kubelet_delay: float = 0.0) -> SimCluster:
    return SimCluster(crd_paths=[WIDGET_CRD], state_path=state, kubelet_delay=kubelet_delay)


def test_objects_uids_and_resource_versions_survive_a_restart(tmp_path):
    state = tmp_path / "cluster.jsonl"
    with _cluster(state) as first:
        ac = first.api_client()
        core, apps, custom = client.CoreV1Api(ac), client.AppsV1Api(ac), client.CustomObjectsApi(ac)
        core.create_namespace({"metadata": {"name": "keep"}})
        made = core.create_namespaced_config_map("keep", {"metadata": {"name": "cm"}, "data": {"a": "1"}})
        core.patch_namespaced_config_map("cm", "keep", {"data": {"a": "2"}})
        core.create_namespaced_config_map("keep", {"metadata": {"name": "gone"}})
        core.delete_namespaced_config_map("gone", "keep")
        apps.create_namespaced_deployment("keep", deployment("web"))
        custom.create_namespaced_custom_object(GROUP, VERSION, "keep", PLURAL, widget("w1"))
        before = core.list_namespaced_config_map("keep").metadata.resource_version
        pods_before = {p.metadata.name for p in core.list_namespaced_pod("keep").items}
        ac.close()

    with _cluster(state) as second:
        ac = second.api_client()
        core, apps, custom = client.CoreV1Api(ac), client.AppsV1Api(ac), client.CustomObjectsApi(ac)
        kept = core.read_namespaced_config_map("cm", "keep")
        assert kept.data == {"a": "2"} and kept.metadata.uid == made.metadata.uid
        assert [c.metadata.name for c in core.list_namespaced_config_map("keep").items] == ["cm"]
        assert custom.get_namespaced_custom_object(GROUP, VERSION, "keep", PLURAL, "w1")["spec"]["size"] == 2
        # The restored Deployment is not scaled up a second time.
        assert {p.metadata.name for p in core.list_namespaced_pod("keep").items} == pods_before
        assert apps.read_namespaced_deployment("web", "keep").status.ready_replicas == 1
        assert int(core.list_namespaced_config_map("keep").metadata.resource_version) >= int(before)
        later = core.patch_namespaced_config_map("cm", "keep", {"data": {"a": "3"}})
        assert int(later.metadata.resource_version) > int(before)
        # The watch history did not survive (as after an etcd compaction): resume means re-list.
        stream = core.list_namespaced_config_map("keep", watch=True, resource_version=made.metadata.resource_version,
                                                 _preload_content=False,
                                                 timeout_seconds=CEILING)
        event = json.loads(stream.readline())
        assert event["type"] == "ERROR" and event["object"]["code"] == 410
        ac.close()


def test_a_pod_restored_before_it_started_is_started_after_the_restart(tmp_path):
    state = tmp_path / "cluster.jsonl"
    # A kubelet that never gets to start the pod before the cluster stops.
    with _cluster(state, kubelet_delay=3600) as first:
        core = client.CoreV1Api(first.api_client())
        core.create_namespaced_pod("default", {"metadata": {"name": "p"},
                                               "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}})
        assert core.read_namespaced_pod("p", "default").status.phase == "Pending"
        rv = core.list_namespaced_pod("default").metadata.resource_version
    with _cluster(state, kubelet_delay=0.01) as second:
        core = client.CoreV1Api(second.api_client())
        w = watch.Watch()
        phase = core.read_namespaced_pod("p", "default").status.phase
        latest = core.list_namespaced_pod("default").metadata.resource_version
        if phase != "Running":
            for ev in w.stream(core.list_namespaced_pod, "default", resource_version=latest, timeout_seconds=CEILING):
                if ev["object"].status.phase == "Running":
                    w.stop()
        assert core.read_namespaced_pod("p", "default").status.phase == "Running"
        assert int(core.read_namespaced_pod("p", "default").metadata.resource_version) > int(rv)


def test_a_line_cut_short_by_a_crash_is_ignored(tmp_path):
    state = tmp_path / "cluster.jsonl"
    with _cluster(state) as first:
        client.CoreV1Api(first.api_client()).create_namespaced_config_map("default", {"metadata": {"name": "ok"}})
    with state.open("a") as journal:
        journal.write('{"rv": 999, "type": "ADDED", "key": ["", "configmaps"], "obj": {"metad')
    with _cluster(state) as second:
        core = client.CoreV1Api(second.api_client())
        assert core.read_namespaced_config_map("ok", "default").metadata.name == "ok"
        try:
            core.read_namespaced_config_map("nope", "default")
            raise AssertionError("a torn record must not create an object")
        except ApiException as exc:
            assert exc.status == 404


def test_without_a_state_file_the_cluster_starts_empty(tmp_path):
    with SimCluster() as first:
        client.CoreV1Api(first.api_client()).create_namespaced_config_map("default", {"metadata": {"name": "x"}})
    with SimCluster() as second:
        assert client.CoreV1Api(second.api_client()).list_namespaced_config_map("default").items == []
    assert list(tmp_path.iterdir()) == []
