"""One SIMULATED API server per test module, real HTTP, the official kubernetes client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client
from sim_helpers import WIDGET_CRD

from streamspace.sim import SimCluster


@pytest.fixture(scope="module")
def sim() -> Iterator[SimCluster]:
    cluster = SimCluster(crd_paths=[WIDGET_CRD], kubelet_delay=0)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def api_client(sim: SimCluster) -> Iterator[client.ApiClient]:
    ac = sim.api_client()
    yield ac
    ac.close()


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def apps(api_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


@pytest.fixture
def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture
def ns(core: client.CoreV1Api) -> str:
    """A fresh namespace per test so tests sharing one cluster cannot see each other's objects."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    return name
