"""Every cluster route is admin only: no token 401, a user or operator 403, before any cluster call."""

from __future__ import annotations

import pytest

ROUTES = [
    ("get", "/api/v1/admin/nodes"), ("get", "/api/v1/admin/nodes/stats"), ("get", "/api/v1/admin/nodes/n1"),
    ("put", "/api/v1/admin/nodes/n1/labels"), ("delete", "/api/v1/admin/nodes/n1/labels/a"),
    ("delete", "/api/v1/admin/nodes/n1/labels/example.com/a"), ("post", "/api/v1/admin/nodes/n1/taints"),
    ("delete", "/api/v1/admin/nodes/n1/taints/a"), ("post", "/api/v1/admin/nodes/n1/cordon"),
    ("post", "/api/v1/admin/nodes/n1/uncordon"), ("post", "/api/v1/admin/nodes/n1/drain"),
    ("get", "/api/v1/cluster/nodes"), ("get", "/api/v1/cluster/pods"), ("get", "/api/v1/cluster/deployments"),
    ("get", "/api/v1/cluster/services"), ("get", "/api/v1/cluster/namespaces"),
    ("get", "/api/v1/cluster/pods/default/p1/logs"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_only_admins_reach_the_cluster(anonymous, user, operator, sim, method, path):
    sim.clear_requests()
    kwargs = {"json": {"key": "a", "value": "b", "effect": "NoSchedule"}} if method in ("put", "post") else {}
    assert getattr(anonymous, method)(path, **kwargs).status_code == 401
    denied = getattr(user, method)(path, **kwargs)
    assert denied.status_code == 403 and denied.json()["error"] == "forbidden"
    assert getattr(operator, method)(path, **kwargs).status_code == 403
    assert sim.requests == []
