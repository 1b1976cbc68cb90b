"""Nodes: list, get and stats figures; labels, taints, cordon/uncordon change the node and are audited."""

from __future__ import annotations

from streamspace.db import fetch_all

from .conftest import make_node, make_pod, unique

NODES = "/api/v1/admin/nodes"


def _audit(action: str, node: str) -> list[dict]:
    return fetch_all("SELECT actor, action, target_type, details FROM audit_log WHERE action = %s AND target = %s"
                     " ORDER BY id", (action, node))


def test_list_and_get_node_figures(admin, core):
    name = unique("node")
    make_node(core, name, cpu="4", memory="8Gi", allocatable_cpu="3800m", allocatable_memory="7Gi",
              labels={"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/worker": ""})
    make_pod(core, unique("web"), name, cpu="500m", memory="256Mi")
    make_pod(core, unique("api"), name, namespace="default", cpu="250m", memory="128Mi")
    done = unique("job")
    make_pod(core, done, name, cpu="2", memory="1Gi")
    core.patch_namespaced_pod_status(done, "streamspace", {"status": {"phase": "Succeeded"}})

    listed = admin.get(NODES)
    assert listed.status_code == 200
    body = listed.json()
    assert body["total"] == len(body["nodes"]) and body["total"] >= 1
    node = next(n for n in body["nodes"] if n["name"] == name)
    got = admin.get(f"{NODES}/{name}").json()
    # The same node either way; only "age" is computed at the moment of each read (from createdAt,
    # which must match), so two reads a second apart may differ in it.
    assert {k: v for k, v in got.items() if k != "age"} == {k: v for k, v in node.items() if k != "age"}
    assert node["status"] == "Ready" and node["ready"] is True and node["unschedulable"] is False
    assert node["roles"] == ["control-plane", "worker"]
    assert node["labels"]["kubernetes.io/hostname"] == name
    assert node["capacity"] == {"cpu": "4", "memory": "8Gi", "pods": "110"}
    assert node["allocatable"]["cpu"] == "3800m"
    # The finished pod holds nothing: only the two running pods count.
    assert node["podCount"] == 2
    assert node["usage"]["cpu"] == "750m" and node["usage"]["memory"] == "384Mi"
    assert node["usage"]["cpuMillicores"] == 750 and node["usage"]["cpuPercent"] == round(75000 / 3800, 1)
    assert {c["type"]: c["status"] for c in node["conditions"]} == {"MemoryPressure": "False", "Ready": "True"}
    assert node["taints"] == [] and node["info"]["kubeletVersion"] == "v1.31.0"
    assert node["age"].endswith("s") and node["createdAt"].endswith("Z")

    page = admin.get(NODES, params={"limit": 1, "offset": 0}).json()
    assert len(page["nodes"]) == 1 and page["total"] == body["total"]


def test_stats_add_up(admin, core):
    before = admin.get(f"{NODES}/stats").json()
    ready, down = unique("node"), unique("node")
    make_node(core, ready, cpu="2", memory="4Gi", pods="50")
    make_node(core, down, cpu="8", memory="16Gi", allocatable_cpu="7500m", pods="100", ready=False,
              unschedulable=True)
    make_pod(core, unique("p"), ready, cpu="1", memory="1Gi")
    make_pod(core, unique("p"), down, cpu="100m", memory=None)
    after = admin.get(f"{NODES}/stats").json()

    assert after["nodes"] - before["nodes"] == 2
    assert after["ready"] - before["ready"] == 1 and after["notReady"] - before["notReady"] == 1
    assert after["schedulingDisabled"] - before["schedulingDisabled"] == 1
    assert after["cpu"]["capacityMillicores"] - before["cpu"]["capacityMillicores"] == 10_000
    assert after["cpu"]["allocatableMillicores"] - before["cpu"]["allocatableMillicores"] == 9_500
    assert after["cpu"]["requestedMillicores"] - before["cpu"]["requestedMillicores"] == 1_100
    assert after["memory"]["capacityBytes"] - before["memory"]["capacityBytes"] == 20 * 2**30
    assert after["memory"]["requestedBytes"] - before["memory"]["requestedBytes"] == 2**30
    assert after["pods"] - before["pods"] == 2 and after["podCapacity"] - before["podCapacity"] == 150
    down_node = admin.get(f"{NODES}/{down}").json()
    assert down_node["status"] == "SchedulingDisabled" and down_node["ready"] is False


def test_labels_set_and_remove(admin, core):
    name = unique("node")
    make_node(core, name)
    set_gpu = admin.put(f"{NODES}/{name}/labels", json={"key": "example.com/gpu", "value": "a100"})
    assert set_gpu.status_code == 200, set_gpu.text
    assert set_gpu.json()["labels"]["example.com/gpu"] == "a100"
    assert core.read_node(name).metadata.labels["example.com/gpu"] == "a100"
    role = admin.put(f"{NODES}/{name}/labels", json={"key": "node-role.kubernetes.io/sessions", "value": ""})
    assert role.status_code == 200 and role.json()["roles"] == ["sessions"]
    plain = admin.put(f"{NODES}/{name}/labels", json={"key": "tier", "value": "gold"})
    assert plain.status_code == 200

    assert admin.delete(f"{NODES}/{name}/labels/example.com/gpu").status_code == 200
    assert admin.delete(f"{NODES}/{name}/labels/node-role.kubernetes.io/sessions").json()["roles"] == []
    assert admin.delete(f"{NODES}/{name}/labels/tier").status_code == 200
    labels = core.read_node(name).metadata.labels
    assert not {"example.com/gpu", "node-role.kubernetes.io/sessions", "tier"} & set(labels)
    missing = admin.delete(f"{NODES}/{name}/labels/tier")
    assert missing.status_code == 404 and missing.json()["error"] == "label not found"

    rows = _audit("node.label.set", name)
    assert [r["details"]["key"] for r in rows] == ["example.com/gpu", "node-role.kubernetes.io/sessions", "tier"]
    assert rows[0]["target_type"] == "node" and rows[0]["actor"].startswith("admin-")
    assert len(_audit("node.label.remove", name)) == 3


def test_bad_label_input_is_refused(admin, core):
    name = unique("node")
    make_node(core, name)
    url = f"{NODES}/{name}/labels"
    for key in ("bad key!", "", "-lead", "UPPER_Prefix.io/x", "a" * 64, "example.com/", "/name"):
        response = admin.put(url, json={"key": key, "value": "v"})
        assert response.status_code == 400, key
        assert response.json()["error"] == "invalid key", key
    for key in ("kubernetes.io/hostname", "node.kubernetes.io/instance-type", "k8s.io/x", "beta.kubernetes.io/os"):
        response = admin.put(url, json={"key": key, "value": "v"})
        assert response.status_code == 400 and "reserved" in response.json()["message"], key
        assert admin.delete(f"{url}/{key}").status_code == 400, key
    for value in ("-x", "a b", "v" * 64, 5):
        response = admin.put(url, json={"key": "ok", "value": value})
        assert response.status_code == 400 and response.json()["error"] == "invalid value", value
    assert admin.put(url, json={"key": "ok", "value": "v", "extra": 1}).status_code == 400
    assert admin.put(url, json={"value": "v"}).status_code == 400
    assert core.read_node(name).metadata.labels == {"kubernetes.io/hostname": name}


def test_unknown_and_malformed_node(admin):
    missing = admin.get(f"{NODES}/no-such-node")
    assert missing.status_code == 404 and missing.json()["error"] == "node not found"
    for method, path, body in (("put", "/labels", {"key": "a", "value": "b"}), ("post", "/cordon", None),
                               ("post", "/taints", {"key": "a", "effect": "NoSchedule"}), ("post", "/drain", None),
                               ("delete", "/labels/a", None), ("delete", "/taints/a", None)):
        response = getattr(admin, method)(f"{NODES}/no-such-node{path}", **({"json": body} if body else {}))
        assert response.status_code == 404, (method, path, response.text)
    bad = admin.get(f"{NODES}/Bad_Name")
    assert bad.status_code == 400 and bad.json()["error"] == "invalid name"


def test_taints_add_replace_and_remove(admin, core):
    name = unique("node")
    make_node(core, name)
    url = f"{NODES}/{name}/taints"
    added = admin.post(url, json={"key": "dedicated", "value": "sessions", "effect": "NoSchedule"})
    assert added.status_code == 200, added.text
    assert added.json()["taints"] == [{"key": "dedicated", "value": "sessions", "effect": "NoSchedule"}]
    # Same key and effect: the value is replaced, not duplicated.
    admin.post(url, json={"key": "dedicated", "value": "gpu", "effect": "NoSchedule"})
    admin.post(url, json={"key": "example.com/maintenance", "effect": "NoExecute"})
    taints = core.read_node(name).spec.taints
    assert [(t.key, t.value, t.effect) for t in taints] == [("dedicated", "gpu", "NoSchedule"),
                                                           ("example.com/maintenance", None, "NoExecute")]
    assert taints[1].time_added is not None

    for body in ({"key": "x", "effect": "Sometimes"}, {"key": "x"}, {"key": "bad key", "effect": "NoSchedule"},
                 {"key": "x", "value": "-bad", "effect": "NoSchedule"}):
        assert admin.post(url, json=body).status_code == 400, body

    assert admin.delete(f"{url}/dedicated", params={"effect": "NoExecute"}).status_code == 404
    removed = admin.delete(f"{url}/example.com/maintenance")
    assert removed.status_code == 200 and [t["key"] for t in removed.json()["taints"]] == ["dedicated"]
    assert admin.delete(f"{url}/dedicated", params={"effect": "NoSchedule"}).json()["taints"] == []
    assert core.read_node(name).spec.taints is None
    assert admin.delete(f"{url}/dedicated").status_code == 404
    assert [r["details"]["effect"] for r in _audit("node.taint.add", name)] == ["NoSchedule", "NoSchedule",
                                                                                "NoExecute"]
    assert len(_audit("node.taint.remove", name)) == 2


def test_cordon_and_uncordon(admin, core):
    name = unique("node")
    make_node(core, name)
    cordoned = admin.post(f"{NODES}/{name}/cordon")
    assert cordoned.status_code == 200 and cordoned.json()["status"] == "SchedulingDisabled"
    assert core.read_node(name).spec.unschedulable is True
    uncordoned = admin.post(f"{NODES}/{name}/uncordon")
    assert uncordoned.status_code == 200 and uncordoned.json()["status"] == "Ready"
    spec = core.read_node(name).spec
    assert spec is None or not spec.unschedulable
    assert len(_audit("node.cordon", name)) == 1 and len(_audit("node.uncordon", name)) == 1


def test_v02_clients_get_the_shapes_they_read(admin, core):
    name = unique("node")
    make_node(core, name, cpu="4", memory="8Gi", pods="110")
    make_pod(core, unique("web"), name, cpu="500m", memory="256Mi")
    listed = admin.get(NODES, params={"format": "v0.2"})
    assert listed.status_code == 200
    nodes = listed.json()
    assert isinstance(nodes, list)  # the earlier contract answered a bare array
    node = next(n for n in nodes if n["name"] == name)
    assert node["pods"] == node["podCount"] == 1
    current = admin.get(f"{NODES}/stats").json()
    stats = admin.get(f"{NODES}/stats", params={"format": "v0.2"}).json()
    assert stats["totalNodes"] == current["nodes"] and stats["readyNodes"] == current["ready"]
    assert stats["totalCapacity"] == {"cpu": current["cpu"]["capacity"], "memory": current["memory"]["capacity"],
                                      "pods": current["podCapacity"]}
    assert stats["totalPods"] == current["pods"]
    refused = admin.get(NODES, params={"format": "v9"})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid format"


def test_memory_reads_as_the_api_writes_it_everywhere(admin, core):
    """Decimal amounts keep their suffix, as domain.quantity writes them for sessions and quotas:
    10^9 bytes is 1G, never 1000000000 (issue 13: two format_memory disagreed)."""
    name = unique("node")
    make_node(core, name, cpu="4", memory="8Gi")
    make_pod(core, unique("web"), name, cpu="500m", memory="1G")

    node = admin.get(f"{NODES}/{name}").json()

    assert node["usage"]["memory"] == "1G"
