"""The Eviction API honours PodDisruptionBudgets and grace periods (sim/disruption.py cites the source)."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from sim_helpers import deployment, eventually


@pytest.fixture
def policy(api_client: client.ApiClient) -> client.PolicyV1Api:
    return client.PolicyV1Api(api_client)


def _budget(name: str, app: str, **spec: object) -> dict:
    return {"metadata": {"name": name}, "spec": {"selector": {"matchLabels": {"app": app}}, **spec}}


def _evict(core: client.CoreV1Api, ns: str, pod: str, grace: int | None = None) -> None:
    body: dict = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": ns}}
    if grace is not None:
        body["deleteOptions"] = {"gracePeriodSeconds": grace}
    core.create_namespaced_pod_eviction(pod, ns, body)


def _pods(core: client.CoreV1Api, ns: str, app: str) -> list[str]:
    return sorted(p.metadata.name for p in core.list_namespaced_pod(ns, label_selector=f"app={app}").items
                  if not p.metadata.deletion_timestamp)


def test_an_eviction_that_would_break_the_budget_is_refused_with_429(apps, core, policy, ns):
    apps.create_namespaced_deployment(ns, deployment("guarded", replicas=2))
    policy.create_namespaced_pod_disruption_budget(ns, _budget("keep-two", "guarded", minAvailable=2))
    victim = _pods(core, ns, "guarded")[0]
    with pytest.raises(ApiException) as refused:
        _evict(core, ns, victim)
    assert refused.value.status == 429
    status = json.loads(refused.value.body)
    assert status["reason"] == "TooManyRequests" and "disruption budget" in status["message"]
    assert status["details"]["causes"][0]["reason"] == "DisruptionBudget"
    assert "needs 2 healthy pods and has 2 currently" in status["details"]["causes"][0]["message"]
    assert victim in _pods(core, ns, "guarded")


def test_an_eviction_the_budget_allows_deletes_the_pod_gracefully(apps, core, policy, ns):
    apps.create_namespaced_deployment(ns, deployment("spare", replicas=2))
    policy.create_namespaced_pod_disruption_budget(ns, _budget("keep-half", "spare", maxUnavailable="50%"))
    victim = _pods(core, ns, "spare")[0]
    _evict(core, ns, victim, grace=20)
    eventually(lambda: victim not in {p.metadata.name for p in core.list_namespaced_pod(ns).items},
               "the evicted pod is gone after its grace period")
    eventually(lambda: len(_pods(core, ns, "spare")) == 2, "the Deployment replaces it")


def test_a_pod_under_two_budgets_cannot_be_evicted(apps, core, policy, ns):
    apps.create_namespaced_deployment(ns, deployment("double"))
    policy.create_namespaced_pod_disruption_budget(ns, _budget("one", "double", minAvailable=0))
    policy.create_namespaced_pod_disruption_budget(ns, _budget("two", "double", maxUnavailable=1))
    with pytest.raises(ApiException) as refused:
        _evict(core, ns, _pods(core, ns, "double")[0])
    assert refused.value.status == 500 and "more than one PodDisruptionBudget" in refused.value.body


def test_a_pending_pod_is_evicted_whatever_its_budget(core, policy, ns):
    core.create_namespaced_pod(ns, {"metadata": {"name": "stuck", "labels": {"app": "stuck"}}, "spec": {
        "nodeSelector": {"no": "such-node"}, "containers": [{"name": "main", "image": "nginx:1.27"}]}})
    policy.create_namespaced_pod_disruption_budget(ns, _budget("all", "stuck", minAvailable="100%"))
    _evict(core, ns, "stuck")
    assert _pods(core, ns, "stuck") == []
