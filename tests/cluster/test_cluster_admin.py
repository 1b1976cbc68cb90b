"""The pure parts of streamspace.cluster.service: label syntax, reserved prefixes, requests, age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streamspace.cluster import service as ca
from streamspace.domain.errors import ValidationError


@pytest.mark.parametrize("key", ["app", "example.com/gpu", "a.b-c_d", "node-role.kubernetes.io/worker", "A1",
                                 "x" * 63, "sub.example.com/" + "y" * 63])
def test_valid_label_keys(key):
    assert ca.validate_label_key(key) == key


@pytest.mark.parametrize("key", ["", "-a", "a-", "a b", "Example.com/x", "example.com/", "/x", "a/b/c", "x" * 64,
                                 "é", None, 3])
def test_invalid_label_keys(key):
    with pytest.raises(ValidationError) as exc:
        ca.validate_label_key(key)
    assert exc.value.field == "key"


def test_reserved_prefixes():
    assert ca.is_reserved_key("kubernetes.io/hostname") and ca.is_reserved_key("node.kubernetes.io/x")
    assert ca.is_reserved_key("k8s.io/x") and ca.is_reserved_key("sub.k8s.io/x")
    assert not ca.is_reserved_key("node-role.kubernetes.io/worker")
    assert not ca.is_reserved_key("notkubernetes.io/x") and not ca.is_reserved_key("hostname")


def test_pod_requests_follow_the_scheduler():
    pod = {"spec": {
        "containers": [{"resources": {"requests": {"cpu": "250m", "memory": "100Mi"}}},
                       {"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},  # limit only: requests its limit
                       {}],
        "initContainers": [{"resources": {"requests": {"cpu": "2", "memory": "64Mi"}}}],
        "overhead": {"cpu": "10m"},
    }}
    assert ca.pod_requests(pod) == (2010, 1124 * 2**20)
    assert ca.pod_requests({"spec": {"containers": [{"resources": {"requests": {"cpu": "garbage"}}}]}}) == (0, 0)


def test_the_cluster_own_quantities_are_read_leniently():
    assert ca.cpu_millicores("1.5") == 1500 and ca.cpu_millicores("100u") == 1
    assert ca.memory_bytes("1Gi") == 2**30 and ca.memory_bytes("1e3") == 1000


@pytest.mark.parametrize(("delta", "shown"), [
    (timedelta(seconds=45), "45s"), (timedelta(minutes=7, seconds=30), "7m30s"), (timedelta(minutes=50), "50m"),
    (timedelta(hours=5, minutes=2), "5h2m"), (timedelta(hours=20), "20h"), (timedelta(days=3, hours=4), "3d4h"),
    (timedelta(days=400), "400d"), (timedelta(days=800), "2y70d"), (timedelta(days=4000), "10y"),
])
def test_human_age(delta, shown):
    now = datetime(2025, 6, 1, tzinfo=UTC)
    assert ca.human_age((now - delta).strftime("%Y-%m-%dT%H:%M:%SZ"), now) == shown
    assert ca.human_age(None) == "" and ca.human_age("yesterday") == ""


def test_node_summary_status_and_roles():
    node = {"metadata": {"name": "n", "labels": {"node-role.kubernetes.io/worker": "", "kubernetes.io/role": "edge"}},
            "spec": {"unschedulable": True}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}
    summary = ca.node_summary(node, [])
    assert summary["status"] == "SchedulingDisabled" and summary["ready"] is False
    assert summary["roles"] == ["edge", "worker"] and summary["usage"]["cpuPercent"] == 0.0
