"""The pods/log subresource: a fixed first line, what the kubelet and tests wrote, tailLines and limitBytes,
the container rules of a real API server, and logs that go away with their pod."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from kubernetes import client

from streamspace.sim import SimCluster


def _pod(name: str, *containers: str, image: str = "busybox:1") -> dict:
    return {"metadata": {"name": name},
            "spec": {"containers": [{"name": c, "image": image} for c in containers or ("main",)]}}


def test_log_has_fixed_line_kubelet_line_and_written_text(sim: SimCluster, core, ns):
    core.create_namespaced_pod(ns, _pod("logger"))
    sim.write_log(ns, "logger", "hello from the test")
    sim.write_log(ns, "logger", "second line\n")
    text = core.read_namespaced_pod_log("logger", ns)
    lines = text.splitlines()
    assert lines[0] == f"simulated log of container main in pod {ns}/logger"
    assert "simulated kubelet: started container main (image busybox:1)" in lines[1]
    assert lines[2:] == ["hello from the test", "second line"]
    assert text.endswith("\n")


def test_tail_lines_and_limit_bytes(sim: SimCluster, core, ns):
    core.create_namespaced_pod(ns, _pod("tail"))
    for i in range(5):
        sim.write_log(ns, "tail", f"line {i}")
    assert core.read_namespaced_pod_log("tail", ns, tail_lines=2) == "line 3\nline 4\n"
    assert core.read_namespaced_pod_log("tail", ns, tail_lines=0) == ""
    assert core.read_namespaced_pod_log("tail", ns, tail_lines=2, limit_bytes=3) == "lin"
    assert core.read_namespaced_pod_log("tail", ns, limit_bytes=9) == "simulated"


def test_bad_options_are_refused(sim: SimCluster, core, ns):
    core.create_namespaced_pod(ns, _pod("opts"))
    with pytest.raises(client.ApiException) as exc:
        core.read_namespaced_pod_log("opts", ns, limit_bytes=0)
    assert exc.value.status == 422
    with pytest.raises(client.ApiException) as exc:
        core.read_namespaced_pod_log("opts", ns, tail_lines=-1)
    assert exc.value.status == 422
    assert _status(f"{sim.url}/api/v1/namespaces/{ns}/pods/opts/log?tailLines=x") == 400


def test_container_choice(sim: SimCluster, core, ns):
    core.create_namespaced_pod(ns, _pod("two", "app", "sidecar"))
    sim.write_log(ns, "two", "from the sidecar", container="sidecar")
    with pytest.raises(client.ApiException) as exc:
        core.read_namespaced_pod_log("two", ns)
    assert exc.value.status == 400
    assert "a container name must be specified for pod two, choose one of: [app sidecar]" in exc.value.body
    with pytest.raises(client.ApiException) as exc:
        core.read_namespaced_pod_log("two", ns, container="nope")
    assert exc.value.status == 400 and "container nope is not valid for pod two" in exc.value.body
    assert core.read_namespaced_pod_log("two", ns, container="sidecar").endswith("from the sidecar\n")
    assert "from the sidecar" not in core.read_namespaced_pod_log("two", ns, container="app")


def test_waiting_container_and_missing_pod(sim: SimCluster, core, ns):
    core.create_namespaced_pod(ns, _pod("broken", image="does-not-exist"))
    with pytest.raises(client.ApiException) as exc:
        core.read_namespaced_pod_log("broken", ns)
    assert exc.value.status == 400 and "is waiting to start: ErrImagePull" in exc.value.body
    with pytest.raises(client.ApiException) as exc:
        core.read_namespaced_pod_log("ghost", ns)
    assert exc.value.status == 404


def test_logs_go_away_with_the_pod(sim: SimCluster, core, ns):
    core.create_namespaced_pod(ns, _pod("gone"))
    sim.write_log(ns, "gone", "before deletion")
    core.delete_namespaced_pod("gone", ns, grace_period_seconds=0)
    core.create_namespaced_pod(ns, _pod("gone"))
    assert "before deletion" not in core.read_namespaced_pod_log("gone", ns)


def test_discovery_lists_pods_log(sim: SimCluster):
    with urllib.request.urlopen(f"{sim.url}/api/v1") as resp:
        names = {r["name"] for r in json.loads(resp.read())["resources"]}
    assert "pods/log" in names


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_log_and_eviction_subresources_refuse_writes(sim: SimCluster, core, ns):
    core.create_namespaced_pod(ns, _pod("keep"))
    for method in ("PUT", "PATCH", "DELETE"):
        for sub in ("log", "eviction"):
            request = urllib.request.Request(f"{sim.url}/api/v1/namespaces/{ns}/pods/keep/{sub}", method=method,
                                             data=b"{}", headers={"Content-Type": "application/merge-patch+json"})
            try:
                urllib.request.urlopen(request)
                status = 200
            except urllib.error.HTTPError as exc:
                status = exc.code
            assert status == 405, (method, sub)
    assert core.read_namespaced_pod("keep", ns).metadata.name == "keep"
