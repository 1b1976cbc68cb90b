"""Nodes and scheduling, through the official client: pods are bound to nodes that fit their requests and
honour cordon, taints, tolerations and node selectors; a pod nothing fits stays Pending with the condition
and event kube-scheduler writes, and is bound as soon as room appears (sim/scheduler.py cites the source)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client
from sim_helpers import deployment, eventually

from streamspace.sim import SimCluster
from streamspace.sim.scheduler import NodeSpec


@pytest.fixture
def small() -> Iterator[client.CoreV1Api]:
    """A cluster of two 4-cpu nodes, one labelled for GPUs and tainted for them."""
    nodes = [NodeSpec("plain", cpu="4", memory="8Gi"),
             NodeSpec("gpu", cpu="4", memory="8Gi", labels={"accelerator": "gpu"},
                      taints=({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},))]
    with SimCluster(kubelet_delay=0, nodes=nodes) as cluster:
        api_client = cluster.api_client()
        yield client.CoreV1Api(api_client)
        api_client.close()


def _pod(name: str, cpu: str = "1", **spec: object) -> dict:
    return {"metadata": {"name": name}, "spec": {
        "containers": [{"name": "main", "image": "nginx:1.27", "resources": {"requests": {"cpu": cpu}}}], **spec}}


def _scheduled(pod: client.V1Pod) -> client.V1PodCondition | None:
    return next((c for c in pod.status.conditions or [] if c.type == "PodScheduled"), None)


def _failed_scheduling(core: client.CoreV1Api, ns: str, pod: str) -> list[client.CoreV1Event]:
    return [e for e in core.list_namespaced_event(ns, field_selector=f"involvedObject.name={pod}").items
            if e.reason == "FailedScheduling"]


def test_the_cluster_has_ready_nodes_and_deployment_pods_are_bound_to_them(core, apps, ns):
    nodes = {n.metadata.name: n for n in core.list_node().items}
    assert len(nodes) >= 2
    for node in nodes.values():
        assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
        assert node.status.allocatable["cpu"] and node.status.node_info.kubelet_version.startswith("v1.")
    apps.create_namespaced_deployment(ns, deployment("bound", replicas=3))
    for pod in core.list_namespaced_pod(ns).items:
        assert pod.spec.node_name in nodes
        assert _scheduled(pod).status == "True" and pod.status.phase == "Running"
        internal = next(a.address for a in nodes[pod.spec.node_name].status.addresses if a.type == "InternalIP")
        assert pod.status.host_ip == internal


def test_a_pod_nothing_fits_stays_pending_with_the_schedulers_condition_and_event(core, ns):
    core.create_namespaced_pod(ns, _pod("huge", cpu="500"))
    pod = core.read_namespaced_pod("huge", ns)
    assert pod.spec.node_name is None and pod.status.phase == "Pending"
    condition = _scheduled(pod)
    assert (condition.status, condition.reason) == ("False", "Unschedulable")
    total = len(core.list_node().items)
    assert condition.message.startswith(f"0/{total} nodes are available: {total} Insufficient cpu. preemption: ")
    events = _failed_scheduling(core, ns, "huge")
    assert len(events) == 1 and events[0].type == "Warning" and events[0].message == condition.message
    assert events[0].source.component == "default-scheduler"


def test_requests_fill_nodes_and_a_freed_place_is_taken_by_the_pending_pod(small):
    ns = f"t-{uuid.uuid4().hex[:8]}"
    small.create_namespace({"metadata": {"name": ns}})
    small.create_namespaced_pod(ns, _pod("first", cpu="3"))
    assert small.read_namespaced_pod("first", ns).spec.node_name == "plain"  # the GPU node's taint
    small.create_namespaced_pod(ns, _pod("second", cpu="2"))
    second = small.read_namespaced_pod("second", ns)
    assert second.spec.node_name is None
    assert _scheduled(second).message.startswith(
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: gpu}. "
        "preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, "
        "1 Preemption is not helpful for scheduling.")
    small.delete_namespaced_pod("first", ns)
    placed = eventually(lambda: small.read_namespaced_pod("second", ns).spec.node_name, "the pending pod is bound")
    assert placed == "plain"
    pod = small.read_namespaced_pod("second", ns)
    assert _scheduled(pod).status == "True" and pod.status.phase == "Running"


def test_tolerations_and_node_selectors_choose_the_node(small):
    ns = f"t-{uuid.uuid4().hex[:8]}"
    small.create_namespace({"metadata": {"name": ns}})
    toleration = [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]
    small.create_namespaced_pod(ns, _pod("picky", nodeSelector={"accelerator": "gpu"}, tolerations=toleration))
    assert small.read_namespaced_pod("picky", ns).spec.node_name == "gpu"
    small.create_namespaced_pod(ns, _pod("untolerated", nodeSelector={"accelerator": "gpu"}))
    message = _scheduled(small.read_namespaced_pod("untolerated", ns)).message
    assert message.startswith("0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
                              "1 node(s) had untolerated taint {dedicated: gpu}.")
    small.create_namespaced_pod(ns, _pod("anywhere", tolerations=[{"operator": "Exists"}], affinity={
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "accelerator", "operator": "DoesNotExist"}]}]}}}))
    assert small.read_namespaced_pod("anywhere", ns).spec.node_name == "plain"


def test_a_cordoned_node_takes_no_new_pods_until_uncordoned(small):
    ns = f"t-{uuid.uuid4().hex[:8]}"
    small.create_namespace({"metadata": {"name": ns}})
    small.patch_node("plain", {"spec": {"unschedulable": True}})
    small.create_namespaced_pod(ns, _pod("waiting"))
    message = _scheduled(small.read_namespaced_pod("waiting", ns)).message
    assert "1 node(s) were unschedulable" in message and "1 node(s) had untolerated taint {dedicated: gpu}" in message
    assert len(_failed_scheduling(small, ns, "waiting")) == 1
    small.patch_node("plain", {"spec": {"unschedulable": False}})
    assert eventually(lambda: small.read_namespaced_pod("waiting", ns).spec.node_name, "bound after uncordon") \
        == "plain"


def test_a_node_that_joins_takes_pending_pods():
    with SimCluster(kubelet_delay=0, nodes=0) as cluster:
        api_client = cluster.api_client()
        core = client.CoreV1Api(api_client)
        core.create_namespaced_pod("default", _pod("early"))
        condition = _scheduled(core.read_namespaced_pod("early", "default"))
        assert condition.reason == "Unschedulable" and condition.message == "no nodes available to schedule pods"
        core.create_node({"metadata": {"name": "late"}})
        core.patch_node_status("late", {"status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "10"},
                                                   "capacity": {"cpu": "2", "memory": "4Gi", "pods": "10"}}})
        eventually(lambda: core.read_namespaced_pod("early", "default").status.phase == "Running", "pod runs")
        assert core.read_namespaced_pod("early", "default").spec.node_name == "late"
        api_client.close()


def test_binding_a_pod_twice_is_a_conflict(core, ns):
    spec = {"schedulerName": "someone-else"}  # left alone by the default scheduler, bound by hand
    core.create_namespaced_pod(ns, _pod("manual", **spec))
    node = core.list_node().items[0].metadata.name
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "manual"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
    core.create_namespaced_pod_binding("manual", ns, binding, _preload_content=False)
    pod = core.read_namespaced_pod("manual", ns)
    assert pod.spec.node_name == node and _scheduled(pod).status == "True"
    eventually(lambda: core.read_namespaced_pod("manual", ns).status.phase == "Running", "the node's kubelet runs it")
    with pytest.raises(client.ApiException) as refused:
        core.create_namespaced_pod_binding("manual", ns, binding, _preload_content=False)
    assert refused.value.status == 409 and f'already assigned to node \\"{node}\\"' in refused.value.body
