"""The simulated DaemonSet controller through the official client: a pod per eligible node (node
selector, taints against tolerations, cordoned nodes), pinned by node affinity and bound by the
scheduler, counted in status, rolled on a template change, gone with its DaemonSet; its init
containers' images land in the node's image cache (sim/daemonset.py cites the Kubernetes source)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client
from sim_helpers import eventually

from streamspace.sim import SimCluster
from streamspace.sim.scheduler import NodeSpec


def daemonset(name: str, image: str = "example.org/desk:1", **pod_spec: object) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
            "initContainers": [{"name": "pull", "image": image, "command": ["/bin/sh", "-c", "true"]}],
            "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}], **pod_spec}}},
    }


@pytest.fixture
def cluster() -> Iterator[tuple[SimCluster, client.CoreV1Api, client.AppsV1Api]]:
    """Three nodes: a plain one, one labelled and tainted for GPUs, one cordoned."""
    nodes = [NodeSpec("plain"),
             NodeSpec("gpu", labels={"accelerator": "gpu"},
                      taints=({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},)),
             NodeSpec("cordoned")]
    with SimCluster(kubelet_delay=0, nodes=nodes) as sim:
        ac = sim.api_client()
        core = client.CoreV1Api(ac)
        core.patch_node("cordoned", {"spec": {"unschedulable": True}})
        yield sim, core, client.AppsV1Api(ac)
        ac.close()


def _pods(core: client.CoreV1Api, name: str) -> list[client.V1Pod]:
    return [p for p in core.list_namespaced_pod("default", label_selector=f"app={name}").items
            if p.metadata.deletion_timestamp is None]


def _status(apps: client.AppsV1Api, name: str) -> dict:
    return apps.read_namespaced_daemon_set_status(name, "default").to_dict()["status"]


def test_one_pod_per_eligible_node_pinned_owned_and_counted(cluster):
    _, core, apps = cluster
    created = apps.create_namespaced_daemon_set("default", daemonset("puller"))
    assert created.spec.update_strategy.type == "RollingUpdate"
    assert created.spec.update_strategy.rolling_update.max_unavailable == 1
    pods = eventually(lambda: len(_pods(core, "puller")) == 2 and _pods(core, "puller"), "two daemon pods")
    # The untolerated taint keeps the GPU node out; the cordoned node is tolerated by default.
    assert sorted(p.spec.node_name for p in pods) == ["cordoned", "plain"]
    for pod in pods:
        owner = pod.metadata.owner_references[0]
        assert (owner.kind, owner.name, owner.uid, owner.controller) == ("DaemonSet", "puller",
                                                                         created.metadata.uid, True)
        term = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution \
            .node_selector_terms[0]
        assert term.match_fields[0].to_dict() == {"key": "metadata.name", "operator": "In",
                                                  "values": [pod.spec.node_name]}
        assert {(t.key, t.effect) for t in pod.spec.tolerations} >= {
            ("node.kubernetes.io/unschedulable", "NoSchedule"), ("node.kubernetes.io/not-ready", "NoExecute")}
        assert pod.metadata.labels["pod-template-generation"] == "1"
        assert pod.metadata.labels["controller-revision-hash"]
        assert pod.metadata.name.startswith("puller-")
        assert pod.status.phase == "Running"
        assert pod.status.init_container_statuses[0].state.terminated.reason == "Completed"
    status = eventually(lambda: _status(apps, "puller")["number_ready"] == 2 and _status(apps, "puller"),
                        "two ready")
    assert (status["desired_number_scheduled"], status["current_number_scheduled"], status["number_ready"],
            status["updated_number_scheduled"], status["number_available"], status["number_misscheduled"],
            status["observed_generation"]) == (2, 2, 2, 2, 2, 0, 1)
    assert not status["number_unavailable"]


def test_tolerations_and_node_selectors_choose_the_nodes(cluster):
    _, core, apps = cluster
    apps.create_namespaced_daemon_set("default", daemonset(
        "gpu-only", nodeSelector={"accelerator": "gpu"},
        tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]))
    pods = eventually(lambda: _pods(core, "gpu-only"), "the GPU node's pod")
    assert [p.spec.node_name for p in pods] == ["gpu"]
    assert _status(apps, "gpu-only")["desired_number_scheduled"] == 1


def test_a_new_node_gets_a_pod_and_a_tainted_one_loses_it(cluster):
    _, core, apps = cluster
    apps.create_namespaced_daemon_set("default", daemonset("grow"))
    eventually(lambda: len(_pods(core, "grow")) == 2, "two pods")
    # A kubelet registers its node, then reports its capacity through the status subresource.
    core.create_node({"metadata": {"name": "late", "labels": {"kubernetes.io/hostname": "late"}}})
    core.patch_node_status("late", {"status": {"allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"}}})
    eventually(lambda: "late" in {p.spec.node_name for p in _pods(core, "grow")}, "a pod on the new node")
    eventually(lambda: _status(apps, "grow")["desired_number_scheduled"] == 3, "three desired")
    # A NoExecute taint the pod does not tolerate evicts the daemon pod from that node.
    core.patch_node("late", {"spec": {"taints": [{"key": "maintenance", "effect": "NoExecute"}]}})
    eventually(lambda: "late" not in {p.spec.node_name for p in _pods(core, "grow")}, "the pod gone from late")
    eventually(lambda: _status(apps, "grow")["desired_number_scheduled"] == 2, "two desired again")


def test_a_template_change_rolls_every_node_to_the_new_revision(cluster):
    _, core, apps = cluster
    apps.create_namespaced_daemon_set("default", daemonset("roll", image="example.org/desk:1"))
    before = eventually(lambda: len(_pods(core, "roll")) == 2 and _pods(core, "roll"), "two pods")
    apps.patch_namespaced_daemon_set("roll", "default", {"spec": {"template": {"spec": {"initContainers": [
        {"name": "pull", "image": "example.org/desk:2", "command": ["/bin/sh", "-c", "true"]}]}}}})

    def rolled() -> list[client.V1Pod] | None:
        pods = _pods(core, "roll")
        done = len(pods) == 2 and all(p.spec.init_containers[0].image == "example.org/desk:2"
                                      and p.status.phase == "Running" for p in pods)
        return pods if done else None

    after = eventually(rolled, "both nodes on the new image")
    assert not {p.metadata.name for p in before} & {p.metadata.name for p in after}
    assert {p.metadata.labels["pod-template-generation"] for p in after} == {"2"}
    assert len({p.metadata.labels["controller-revision-hash"] for p in before + after}) == 2
    ds = apps.read_namespaced_daemon_set("roll", "default")
    assert ds.metadata.annotations["deprecated.daemonset.template.generation"] == "2"
    status = eventually(lambda: _status(apps, "roll")["updated_number_scheduled"] == 2 and _status(apps, "roll"),
                        "two updated")
    assert status["observed_generation"] == ds.metadata.generation == 2


def test_deleting_the_daemonset_deletes_its_pods(cluster):
    _, core, apps = cluster
    apps.create_namespaced_daemon_set("default", daemonset("gone"))
    eventually(lambda: len(_pods(core, "gone")) == 2, "two pods")
    apps.delete_namespaced_daemon_set("gone", "default")
    eventually(lambda: not core.list_namespaced_pod("default", label_selector="app=gone").items,
               "the pods collected")


def test_a_selector_that_misses_the_template_is_refused(cluster):
    _, _, apps = cluster
    body = daemonset("bad")
    body["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(client.ApiException) as refused:
        apps.create_namespaced_daemon_set("default", body)
    assert refused.value.status == 422 and "does not match" in refused.value.body


def test_a_prepulled_image_makes_the_next_pod_on_that_node_a_cached_start():
    with SimCluster(kubelet_delay=0, image_pull_seconds=0.2, start_seconds=0.05, nodes=1) as sim:
        ac = sim.api_client()
        core, apps = client.CoreV1Api(ac), client.AppsV1Api(ac)
        apps.create_namespaced_daemon_set("default", daemonset("prepull", image="example.org/desk:7"))
        eventually(lambda: _status(apps, "prepull")["number_ready"] == 1, "the image pulled on the node")
        node = core.read_node("sim-node-1")
        assert ["example.org/desk:7"] in [image.names for image in node.status.images]
        core.create_namespaced_pod("default", {"metadata": {"name": "desk"}, "spec": {
            "containers": [{"name": "desk", "image": "example.org/desk:7"}]}})
        eventually(lambda: core.read_namespaced_pod("desk", "default").status.phase == "Running", "the desktop")
        reasons = [(e.reason, e.message) for e in core.list_namespaced_event(
            "default", field_selector="involvedObject.name=desk").items]
        assert ("Pulled", 'Container image "example.org/desk:7" already present on machine') in reasons
        assert "Pulling" not in [reason for reason, _ in reasons]
