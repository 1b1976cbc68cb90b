"""Drain: cordon, evictions through the Eviction API, DaemonSet and mirror pods skipped, refusals reported."""

from __future__ import annotations

from kubernetes import client

from streamspace.db import fetch_all

from .conftest import NAMESPACE, make_node, make_pod, unique

NODES = "/api/v1/admin/nodes"


def _exists(core: client.CoreV1Api, name: str, namespace: str = NAMESPACE) -> bool:
    try:
        core.read_namespaced_pod(name, namespace)
    except client.ApiException as exc:
        assert exc.status == 404
        return False
    return True


def test_drain_evicts_pods_and_skips_daemonset_pods(admin, core, sim):
    node, other = unique("node"), unique("node")
    make_node(core, node)
    make_node(core, other)
    replica, bare, elsewhere = unique("rs"), unique("bare"), unique("elsewhere")
    daemon, mirror, guarded = unique("ds"), unique("mirror"), unique("pdb")
    make_pod(core, replica, node, owner_kind="ReplicaSet")
    make_pod(core, bare, node, namespace="default")
    # A real DaemonSet's pod on the node (the simulated controller makes it; a pod naming a DaemonSet
    # that does not exist would be garbage-collected, as on a real cluster).
    client.AppsV1Api(core.api_client).create_namespaced_daemon_set(NAMESPACE, {
        "metadata": {"name": daemon}, "spec": {"selector": {"matchLabels": {"app": daemon}}, "template": {
            "metadata": {"labels": {"app": daemon}},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": node},
                     "containers": [{"name": "main", "image": "busybox:1"}]}}}})
    # With no kubelet delay the controller has made the pod before the create is answered.
    [daemon] = [p.metadata.name for p in core.list_namespaced_pod(NAMESPACE, label_selector=f"app={daemon}").items
                if p.spec.node_name == node]
    make_pod(core, mirror, node, annotations={"kubernetes.io/config.mirror": "abc"})
    make_pod(core, guarded, node)
    make_pod(core, elsewhere, other)
    # A PodDisruptionBudget that needs the guarded pod: the Eviction API refuses it (429).
    client.PolicyV1Api(core.api_client).create_namespaced_pod_disruption_budget(NAMESPACE, {
        "metadata": {"name": guarded}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": guarded}}}})
    sim.clear_requests()

    response = admin.post(f"{NODES}/{node}/drain", json={"gracePeriodSeconds": 30})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["node"] == node and result["cordoned"] is True and result["complete"] is False
    assert sorted(p["name"] for p in result["evicted"]) == sorted([replica, bare])
    assert {p["name"]: p["reason"] for p in result["skipped"]} == {
        daemon: "DaemonSet-managed", mirror: "mirror pod (managed by the kubelet)"}
    assert [p["name"] for p in result["failed"]] == [guarded]
    assert "disruption budget" in result["failed"][0]["error"]

    assert core.read_node(node).spec.unschedulable is True
    assert not _exists(core, replica) and not _exists(core, bare, "default")
    assert _exists(core, daemon) and _exists(core, mirror) and _exists(core, guarded) and _exists(core, elsewhere)
    evictions = [r for r in sim.requests if r.method == "POST" and r.path.endswith("/eviction")]
    assert len(evictions) == 3 and not any(daemon in r.path or mirror in r.path for r in evictions)
    assert not any(r.method == "DELETE" and "/pods/" in r.path for r in sim.requests)

    rows = fetch_all("SELECT details FROM audit_log WHERE action = 'node.drain' AND target = %s", (node,))
    assert len(rows) == 1
    assert rows[0]["details"] | {} == {"gracePeriodSeconds": 30, "evicted": 2, "skipped": 2, "failed": 1,
                                       "failedPods": [f"{NAMESPACE}/{guarded}"]}


def test_drain_of_an_empty_node_without_body(admin, core):
    node = unique("node")
    make_node(core, node)
    result = admin.post(f"{NODES}/{node}/drain").json()
    assert result == {"node": node, "cordoned": True, "evicted": [], "skipped": [], "failed": [], "complete": True}


def test_drain_refuses_a_bad_grace_period(admin, core):
    node = unique("node")
    make_node(core, node)
    for field in ("gracePeriodSeconds", "grace_period_seconds"):
        for grace in (-1, "30", 1.5, True, 10**9):
            response = admin.post(f"{NODES}/{node}/drain", json={field: grace})
            assert response.status_code == 400, grace
            assert response.json()["error"] == f"invalid {field}"
    both = admin.post(f"{NODES}/{node}/drain", json={"gracePeriodSeconds": 1, "grace_period_seconds": 1})
    assert both.status_code == 400 and both.json()["error"] == "invalid gracePeriodSeconds"
    assert admin.post(f"{NODES}/{node}/drain", json={"force": True}).status_code == 400
    spec = core.read_node(node).spec
    assert spec is None or not spec.unschedulable


def test_drain_still_takes_the_old_grace_period_name_for_one_release(admin, core):
    node = unique("node")
    make_node(core, node)
    assert admin.post(f"{NODES}/{node}/drain", json={"grace_period_seconds": 7}).status_code == 200
    rows = fetch_all("SELECT details FROM audit_log WHERE action = 'node.drain' AND target = %s", (node,))
    assert [r["details"]["gracePeriodSeconds"] for r in rows] == [7]
