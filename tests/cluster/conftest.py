"""The cluster function over real HTTP, real Postgres (audit rows) and the simulated API server, where
tests create nodes and pods with the official kubernetes client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.conftest import Client, client_for

NAMESPACE = "streamspace"


@pytest.fixture(scope="module")
def base(serve, sim) -> str:
    return serve("cluster")


def _client(base: str, role: str) -> Client:
    return client_for(base, f"{role}-{uuid.uuid4().hex[:6]}", role)


@pytest.fixture(scope="module")
def admin(base: str) -> Client:
    return _client(base, "admin")


@pytest.fixture(scope="module")
def user(base: str) -> Client:
    return _client(base, "user")


@pytest.fixture(scope="module")
def operator(base: str) -> Client:
    return _client(base, "operator")


@pytest.fixture(scope="module")
def anonymous(base: str) -> Client:
    return Client(base, None)


@pytest.fixture(scope="module")
def core(sim) -> Iterator[client.CoreV1Api]:
    api_client = sim.api_client()
    yield client.CoreV1Api(api_client)
    api_client.close()


@pytest.fixture(scope="module")
def apps(sim) -> Iterator[client.AppsV1Api]:
    api_client = sim.api_client()
    yield client.AppsV1Api(api_client)
    api_client.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def make_node(core: client.CoreV1Api, name: str, *, cpu: str = "4", memory: str = "8Gi", pods: str = "110",
              allocatable_cpu: str | None = None, allocatable_memory: str | None = None, ready: bool = True,
              labels: dict[str, str] | None = None, unschedulable: bool = False) -> None:
    """A node as a kubelet registers it: object, then status (capacity, allocatable, conditions)."""
    body: dict[str, Any] = {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}}}
    if unschedulable:
        body["spec"] = {"unschedulable": True}
    core.create_node(body)
    core.patch_node_status(name, {"status": {
        "capacity": {"cpu": cpu, "memory": memory, "pods": pods},
        "allocatable": {"cpu": allocatable_cpu or cpu, "memory": allocatable_memory or memory, "pods": pods},
        "conditions": [
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
            {"type": "Ready", "status": "True" if ready else "False",
             "reason": "KubeletReady" if ready else "KubeletNotReady"},
        ],
        "nodeInfo": {"kubeletVersion": "v1.31.0", "architecture": "amd64", "operatingSystem": "linux",
                     "osImage": "Simulated", "kernelVersion": "6.1", "containerRuntimeVersion": "sim://1",
                     "machineID": "m", "systemUUID": "s", "bootID": "b", "kubeProxyVersion": "v1.31.0"},
        "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}],
    }})


def make_pod(core: client.CoreV1Api, name: str, node: str, *, namespace: str = NAMESPACE, cpu: str | None = "500m",
             memory: str | None = "256Mi", owner_kind: str | None = None, annotations: dict[str, str] | None = None,
             containers: tuple[str, ...] = ("main",)) -> None:
    requests_: dict[str, str] = {}
    if cpu:
        requests_["cpu"] = cpu
    if memory:
        requests_["memory"] = memory
    meta: dict[str, Any] = {"name": name, "labels": {"app": name}}
    if owner_kind and owner_kind != "ReplicaSet":
        # A made-up owner: only for kinds the simulated cluster does not serve (the collector keeps the pod).
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner_kind, "name": f"{name}-owner",
                                    "uid": str(uuid.uuid4()), "controller": True}]
    if annotations:
        meta["annotations"] = annotations
    core.create_namespaced_pod(namespace, {"metadata": meta, "spec": {
        "nodeName": node,
        "containers": [{"name": c, "image": "busybox:1", "resources": {"requests": requests_} if requests_ else {}}
                       for c in containers]}})
    if owner_kind == "ReplicaSet":
        # A live ReplicaSet that adopts the pod (an owner that does not exist would have it collected).
        client.AppsV1Api(core.api_client).create_namespaced_replica_set(namespace, {
            "metadata": {"name": f"{name}-owner"}, "spec": {
                "replicas": 1, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                             "spec": {"containers": [{"name": "main", "image": "busybox:1"}]}}}})
        owner = core.read_namespaced_pod(name, namespace).metadata.owner_references
        assert owner and owner[0].kind == "ReplicaSet" and owner[0].controller
