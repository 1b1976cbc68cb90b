"""The simulated kubelet: Deployment -> ReplicaSet -> Ready pods -> status, scale to zero, image pull failures."""

from __future__ import annotations

from kubernetes import client, watch
from sim_helpers import CEILING, deployment, eventually

from streamspace.sim import SimCluster


def test_kubelet_makes_deployment_pod_ready(apps, core, ns):
    created = apps.create_namespaced_deployment(ns, deployment("web", replicas=2))
    pods = core.list_namespaced_pod(ns, label_selector="app=web").items
    assert len(pods) == 2
    replica_set = apps.list_namespaced_replica_set(ns).items[0]
    assert replica_set.metadata.owner_references[0].uid == created.metadata.uid
    for pod in pods:
        assert pod.metadata.name.startswith(replica_set.metadata.name + "-")
        assert pod.metadata.owner_references[0].uid == replica_set.metadata.uid
        assert pod.metadata.owner_references[0].kind == "ReplicaSet"
        assert pod.status.phase == "Running"
        assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "True"
        assert pod.status.container_statuses[0].ready is True
    status = apps.read_namespaced_deployment("web", ns).status
    assert (status.replicas, status.ready_replicas, status.available_replicas, status.updated_replicas) == (2, 2, 2, 2)
    assert status.observed_generation == 1
    assert {c.type: c.status for c in status.conditions}["Available"] == "True"


def test_kubelet_scale_to_zero_removes_pods(apps, core, ns):
    apps.create_namespaced_deployment(ns, deployment("sleepy"))
    assert len(core.list_namespaced_pod(ns).items) == 1
    apps.patch_namespaced_deployment("sleepy", ns, {"spec": {"replicas": 0}})
    assert core.list_namespaced_pod(ns).items == []
    dep = apps.read_namespaced_deployment("sleepy", ns)
    # Zero counts are omitted from DeploymentStatus, as on a real cluster.
    assert dep.status.ready_replicas is None and dep.status.replicas is None
    assert dep.status.observed_generation == dep.metadata.generation == 2
    apps.patch_namespaced_deployment("sleepy", ns, {"spec": {"replicas": 1}})
    assert apps.read_namespaced_deployment("sleepy", ns).status.ready_replicas == 1


def test_kubelet_bad_image_stays_pending_with_image_pull_error(apps, core, ns):
    apps.create_namespaced_deployment(ns, deployment("broken", image="registry.example/invalid-image:1"))
    pod = core.list_namespaced_pod(ns).items[0]
    assert pod.status.phase == "Pending"
    waiting = pod.status.container_statuses[0].state.waiting
    assert waiting.reason in ("ErrImagePull", "ImagePullBackOff")
    dep = apps.read_namespaced_deployment("broken", ns)
    assert dep.status.ready_replicas is None and dep.status.unavailable_replicas == 1
    assert {c.type: c.status for c in dep.status.conditions}["Available"] == "False"
    # Fixing the image replaces the pod and the Deployment becomes ready.
    apps.patch_namespaced_deployment("broken", ns, {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": "nginx:1.27"}]}}}})
    pods = core.list_namespaced_pod(ns).items
    assert len(pods) == 1 and pods[0].status.phase == "Running"
    assert apps.read_namespaced_deployment("broken", ns).status.ready_replicas == 1


def test_kubelet_recreates_a_deleted_pod(apps, core, ns):
    apps.create_namespaced_deployment(ns, deployment("again"))
    first = core.list_namespaced_pod(ns).items[0].metadata.name
    core.delete_namespaced_pod(first, ns)
    pods = core.list_namespaced_pod(ns).items
    assert len(pods) == 1 and pods[0].metadata.name != first and pods[0].status.phase == "Running"


def test_kubelet_status_writes_produce_modified_events(apps, ns):
    rv = apps.list_namespaced_deployment(ns).metadata.resource_version
    apps.create_namespaced_deployment(ns, deployment("evt"))
    w = watch.Watch()
    events = []
    for e in w.stream(apps.list_namespaced_deployment, ns, resource_version=rv, timeout_seconds=5):
        events.append((e["type"], e["object"].status.ready_replicas))
        if e["object"].status.ready_replicas == 1:
            w.stop()
    assert events[0] == ("ADDED", None)
    assert events[-1] == ("MODIFIED", 1)
    assert all(t == "MODIFIED" for t, _ in events[1:])


def test_kubelet_delay_shows_pending_pod_before_ready():
    with SimCluster(kubelet_delay=0.3) as sim:
        ac = sim.api_client()
        apps, core = client.AppsV1Api(ac), client.CoreV1Api(ac)
        rv = core.list_namespaced_pod("default").metadata.resource_version
        apps.create_namespaced_deployment("default", deployment("slow"))
        # The watch replays every change since rv: the pod is first seen Pending, later Running.
        phases = []
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=CEILING):
            phases.append(ev["object"].status.phase)
            if phases[-1] == "Running":
                w.stop()
        assert phases[0] == "Pending" and phases[-1] == "Running", phases
        readiness = []
        for ev in w.stream(apps.list_namespaced_deployment, "default", resource_version=rv, timeout_seconds=CEILING):
            readiness.append(ev["object"].status.ready_replicas)
            if readiness[-1] == 1:
                w.stop()
        assert readiness[0] is None and readiness[-1] == 1, readiness


def test_bare_pod_runs_and_eviction_deletes_it(core, ns):
    core.create_namespaced_pod(ns, {"metadata": {"name": "bare"},
                                    "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}})
    assert core.read_namespaced_pod("bare", ns).status.phase == "Running"
    core.create_namespaced_pod_eviction("bare", ns, {"apiVersion": "policy/v1", "kind": "Eviction",
                                                     "metadata": {"name": "bare", "namespace": ns}})
    assert core.list_namespaced_pod(ns).items == []


def _pod_events(core, ns: str, pod: str) -> list[tuple[str, str]]:
    events = [e for e in core.list_namespaced_event(ns).items if e.involved_object.name == pod]
    events.sort(key=lambda e: int(e.metadata.resource_version))
    return [(e.reason, e.message) for e in events]


def test_a_node_pulls_an_image_once_and_the_next_pod_finds_it_present():
    with SimCluster(kubelet_delay=0, image_pull_seconds=0.3, start_seconds=0.1, nodes=1) as sim:
        ac = sim.api_client()
        apps, core = client.AppsV1Api(ac), client.CoreV1Api(ac)
        apps.create_namespaced_deployment("default", deployment("first", image="example.org/desk:1"))
        pod = eventually(lambda: core.list_namespaced_pod("default", label_selector="app=first").items,
                         "the first pod")[0]
        # While the image is pulled, the pod is bound but its container waits in ContainerCreating.
        waiting = eventually(lambda: core.read_namespaced_pod(pod.metadata.name, "default").status.container_statuses,
                             "the pulling pod's container status")
        assert waiting[0].state.waiting is not None or waiting[0].state.running is not None
        eventually(lambda: core.read_namespaced_pod(pod.metadata.name, "default").status.phase == "Running",
                   "the first pod running")
        first = _pod_events(core, "default", pod.metadata.name)
        assert [reason for reason, _ in first] == ["Scheduled", "Pulling", "Pulled", "Created", "Started"], first
        assert first[0][1] == f"Successfully assigned default/{pod.metadata.name} to sim-node-1"
        assert first[2][1].startswith('Successfully pulled image "example.org/desk:1"')
        node = core.read_node(core.read_namespaced_pod(pod.metadata.name, "default").spec.node_name)
        assert [image.names for image in node.status.images] == [["example.org/desk:1"]]

        apps.create_namespaced_deployment("default", deployment("second", image="example.org/desk:1"))
        pod = eventually(lambda: core.list_namespaced_pod("default", label_selector="app=second").items,
                         "the second pod")[0]
        eventually(lambda: core.read_namespaced_pod(pod.metadata.name, "default").status.phase == "Running",
                   "the second pod running")
        second = _pod_events(core, "default", pod.metadata.name)
        assert [reason for reason, _ in second] == ["Scheduled", "Pulled", "Created", "Started"], second
        assert second[1][1] == 'Container image "example.org/desk:1" already present on machine'


def test_a_failed_pull_is_recorded_as_a_warning_event(apps, core, ns):
    apps.create_namespaced_deployment(ns, deployment("nopull", image="registry.example/invalid-image:1"))
    pod = core.list_namespaced_pod(ns).items[0]
    events = [e for e in core.list_namespaced_event(ns).items if e.involved_object.name == pod.metadata.name]
    failed = [e for e in events if e.reason == "Failed"]
    assert len(failed) == 1 and failed[0].type == "Warning"
    assert failed[0].involved_object.field_path == "spec.containers{main}"
