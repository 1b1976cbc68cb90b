"""Cluster views: namespace scoping, pagination, and pod logs returned as JSON text."""

from __future__ import annotations

from .conftest import NAMESPACE, make_node, make_pod, unique

CLUSTER = "/api/v1/cluster"


def test_pods_are_scoped_to_the_streamspace_namespace_by_default(admin, core):
    node = unique("node")
    make_node(core, node)
    mine, theirs = unique("mine"), unique("theirs")
    make_pod(core, mine, node)
    make_pod(core, theirs, node, namespace="default")

    scoped = admin.get(f"{CLUSTER}/pods").json()
    names = {p["name"] for p in scoped["pods"]}
    assert mine in names and theirs not in names
    assert {p["namespace"] for p in scoped["pods"]} == {NAMESPACE} and scoped["total"] == len(scoped["pods"])
    pod = next(p for p in scoped["pods"] if p["name"] == mine)
    assert pod["node"] == node and pod["status"] == "Running" and pod["ready"] == "1/1"
    assert pod["requests"] == {"cpu": "500m", "memory": "256Mi"} and pod["containers"][0]["image"] == "busybox:1"

    other = {p["name"] for p in admin.get(f"{CLUSTER}/pods", params={"namespace": "default"}).json()["pods"]}
    assert theirs in other and mine not in other
    everything = {p["name"] for p in admin.get(f"{CLUSTER}/pods", params={"allNamespaces": "true"}).json()["pods"]}
    assert {mine, theirs} <= everything

    both = admin.get(f"{CLUSTER}/pods", params={"namespace": "default", "allNamespaces": "true"})
    assert both.status_code == 400
    for bad in ("Default", "a/b", "-x", "x" * 64):
        response = admin.get(f"{CLUSTER}/pods", params={"namespace": bad})
        assert response.status_code == 400 and response.json()["error"] == "invalid namespace", bad
    assert admin.get(f"{CLUSTER}/pods", params={"limit": 0}).status_code == 400

    total = scoped["total"]
    first = admin.get(f"{CLUSTER}/pods", params={"limit": 1}).json()
    second = admin.get(f"{CLUSTER}/pods", params={"limit": 1, "offset": 1}).json()
    assert first["total"] == second["total"] == total and len(first["pods"]) == 1
    assert first["pods"] != second["pods"] or total < 2


def test_deployments_services_namespaces_and_nodes(admin, apps, core):
    name = unique("web")
    labels = {"app": name}
    apps.create_namespaced_deployment(NAMESPACE, {
        "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}})
    core.create_namespaced_service(NAMESPACE, {"metadata": {"name": name},
                                               "spec": {"selector": labels, "ports": [{"name": "http", "port": 80}]}})
    core.create_namespaced_service("default", {"metadata": {"name": f"{name}-other"},
                                               "spec": {"ports": [{"port": 81}]}})

    deployments = admin.get(f"{CLUSTER}/deployments").json()["deployments"]
    dep = next(d for d in deployments if d["name"] == name)
    assert dep["replicas"] == 2 and dep["readyReplicas"] == 2 and dep["images"] == ["nginx:1.27"]
    services = admin.get(f"{CLUSTER}/services").json()["services"]
    svc = next(s for s in services if s["name"] == name)
    assert svc["type"] == "ClusterIP" and svc["ports"] == [{"name": "http", "port": 80, "targetPort": 80,
                                                            "protocol": "TCP"}]
    assert f"{name}-other" not in {s["name"] for s in services}
    all_services = admin.get(f"{CLUSTER}/services", params={"allNamespaces": "true"}).json()["services"]
    assert f"{name}-other" in {s["name"] for s in all_services}

    namespaces = admin.get(f"{CLUSTER}/namespaces").json()
    assert {"default", NAMESPACE} <= {n["name"] for n in namespaces["namespaces"]}
    assert all(n["status"] == "Active" for n in namespaces["namespaces"])
    node = unique("node")
    make_node(core, node)
    nodes = admin.get(f"{CLUSTER}/nodes").json()
    assert node in {n["name"] for n in nodes["nodes"]} and nodes["total"] == len(nodes["nodes"])


def test_pod_logs(admin, core, sim):
    node, pod = unique("node"), unique("logs")
    make_node(core, node)
    make_pod(core, pod, node)
    tricky = '<script>alert(1)</script> {"json": "inside"} \\u0000 ünïcode'
    for i in range(3):
        sim.write_log(NAMESPACE, pod, f"line {i}")
    sim.write_log(NAMESPACE, pod, tricky)
    url = f"{CLUSTER}/pods/{NAMESPACE}/{pod}/logs"

    whole = admin.get(url)
    assert whole.status_code == 200 and whole.headers["Content-Type"].startswith("application/json")
    body = whole.json()
    assert body["logs"].startswith(f"simulated log of container main in pod {NAMESPACE}/{pod}\n")
    assert body["logs"].endswith(f"line 0\nline 1\nline 2\n{tricky}\n")
    assert body["tailLines"] == 200 and body["limitBytes"] == 1024 * 1024 and body["truncated"] is False

    assert admin.get(url, params={"tailLines": 2}).json()["logs"] == f"line 2\n{tricky}\n"
    limited = admin.get(url, params={"tailLines": 2, "limitBytes": 4}).json()
    assert limited["logs"] == "line" and limited["truncated"] is True
    capped = admin.get(url, params={"limitBytes": 10**9}).json()
    assert capped["limitBytes"] == 1024 * 1024
    assert admin.get(url, params={"container": "main"}).json()["logs"] == body["logs"]

    assert admin.get(url, params={"tailLines": 5001}).status_code == 400
    assert admin.get(url, params={"tailLines": "x"}).status_code == 400
    assert admin.get(url, params={"limitBytes": 0}).status_code == 400
    wrong = admin.get(url, params={"container": "nope"})
    assert wrong.status_code == 400 and "not valid" in wrong.json()["message"]
    assert admin.get(url, params={"container": "Bad_Name"}).json()["error"] == "invalid container"
    assert admin.get(f"{CLUSTER}/pods/{NAMESPACE}/no-such-pod/logs").status_code == 404
    bad_ns = admin.get(f"{CLUSTER}/pods/Bad_NS/{pod}/logs")
    assert bad_ns.status_code == 400 and bad_ns.json()["error"] == "invalid namespace"
    for name in ("...", "Upper", "a%20b", "x" * 254):
        bad_name = admin.get(f"{CLUSTER}/pods/{NAMESPACE}/{name}/logs")
        assert bad_name.status_code == 400 and bad_name.json()["error"] == "invalid name", name
