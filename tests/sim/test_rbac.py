"""The simulated API server's authentication and RBAC authorizer, through the official client: a
ServiceAccount token gets exactly what its bindings grant, as in Kubernetes' RBAC authorizer."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from streamspace.sim import SimCluster


@pytest.fixture(scope="module")
def rbac_sim() -> Iterator[SimCluster]:
    cluster = SimCluster(kubelet_delay=0)
    cluster.start()
    cluster.api.ensure_namespace("other")
    cluster.load_rbac([
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot", "namespace": "default"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "robot"},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "patch"]},
                   {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["mine"]},
                   {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
                   {"apiGroups": [""], "resources": ["*/status"], "verbs": ["patch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "robot"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "robot"},
         "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "default"}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "node-reader"},
         "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "node-reader"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "node-reader"},
         "subjects": [{"kind": "Group", "name": "system:serviceaccounts:default"}]},
    ], namespace="default")
    yield cluster
    cluster.stop()


def as_token(sim: SimCluster, token: str) -> client.CoreV1Api:
    cfg = client.Configuration()
    cfg.host = sim.url
    cfg.api_key = {"authorization": token}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    return client.CoreV1Api(client.ApiClient(cfg))


def status_of(call) -> int:  # type: ignore[no-untyped-def]
    try:
        call()
    except ApiException as exc:
        return int(exc.status)
    return 200


def test_a_service_account_gets_exactly_its_bindings(rbac_sim: SimCluster) -> None:
    admin = client.CoreV1Api(rbac_sim.api_client())
    for ns in ("default", "other"):
        admin.create_namespaced_config_map(ns, {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    robot = as_token(rbac_sim, rbac_sim.token_for("default", "robot"))
    assert status_of(lambda: robot.read_namespaced_config_map("cm", "default")) == 200
    assert status_of(lambda: robot.list_namespaced_config_map("default")) == 200
    # A RoleBinding grants in its own namespace only.
    assert status_of(lambda: robot.read_namespaced_config_map("cm", "other")) == 403
    # Verbs not granted, even on a granted resource.
    assert status_of(lambda: robot.delete_namespaced_config_map("cm", "default")) == 403
    assert status_of(lambda: robot.create_namespaced_config_map(
        "default", {"metadata": {"name": "new"}})) == 403
    # resourceNames narrows the rule to those objects.
    assert status_of(lambda: robot.read_namespaced_secret("mine", "default")) == 404
    assert status_of(lambda: robot.read_namespaced_secret("theirs", "default")) == 403
    # A ClusterRoleBinding to the ServiceAccount's group, cluster-wide.
    assert status_of(lambda: robot.list_node()) == 200
    assert status_of(lambda: robot.read_node("n1")) == 403


def test_the_refusal_reads_like_the_api_server(rbac_sim: SimCluster) -> None:
    robot = as_token(rbac_sim, rbac_sim.token_for("default", "robot"))
    with pytest.raises(ApiException) as refused:
        robot.delete_namespaced_config_map("cm", "default")
    assert refused.value.status == 403
    assert json.loads(refused.value.body)["message"] == (
        'configmaps "cm" is forbidden: User "system:serviceaccount:default:robot" cannot delete resource '
        '"configmaps" in API group "" in the namespace "default"')


def test_an_unknown_token_is_unauthorized_and_no_token_is_the_harness_admin(rbac_sim: SimCluster) -> None:
    stranger = as_token(rbac_sim, "not-a-token")
    assert status_of(lambda: stranger.list_namespaced_config_map("default")) == 401
    assert status_of(lambda: client.CoreV1Api(rbac_sim.api_client()).list_namespace()) == 200


def test_a_token_of_an_unbound_account_may_do_nothing(rbac_sim: SimCluster) -> None:
    nobody = as_token(rbac_sim, rbac_sim.token_for("other", f"nobody-{uuid.uuid4().hex[:6]}"))
    assert status_of(lambda: nobody.list_namespaced_config_map("other")) == 403
    assert status_of(lambda: nobody.list_node()) == 403


def test_server_side_apply_that_creates_needs_create(rbac_sim: SimCluster) -> None:
    client.CoreV1Api(rbac_sim.api_client()).create_namespaced_config_map(
        "default", {"metadata": {"name": "cm-to-apply"}, "data": {"a": "1"}})  # this test's own, made as admin
    robot = as_token(rbac_sim, rbac_sim.token_for("default", "robot")).api_client
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "2"}}

    def apply(name: str) -> int:
        body["metadata"]["name"] = name
        response = robot.call_api(*robot.param_serialize(
            "PATCH", f"/api/v1/namespaces/default/configmaps/{name}",
            query_params=[("fieldManager", "t"), ("force", "true")],
            header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
            body=body, auth_settings=["BearerToken"]))
        response.read()
        return int(response.status)

    assert apply("cm-to-apply") == 200  # exists: patch is enough
    assert apply("applied") == 403  # would create it: patch alone is not


def test_status_subresources_by_wildcard(rbac_sim: SimCluster) -> None:
    admin = client.CoreV1Api(rbac_sim.api_client())
    admin.create_namespace({"metadata": {"name": f"ns-{uuid.uuid4().hex[:6]}"}})
    robot = as_token(rbac_sim, rbac_sim.token_for("default", "robot"))
    # "*/status" grants the status of any resource, not the resource itself.
    admin.create_namespaced_service("default", {"metadata": {"name": "svc"},
                                                "spec": {"ports": [{"port": 80}]}})
    assert status_of(lambda: robot.patch_namespaced_service_status(
        "svc", "default", {"status": {"loadBalancer": {}}})) == 200
    assert status_of(lambda: robot.patch_namespaced_service("svc", "default", {"metadata": {"labels": {"a": "b"}}})) \
        == 403
