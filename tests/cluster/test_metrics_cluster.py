"""GET /api/v1/metrics gains a `cluster` block for operators and admins (nodes from the cluster, every
session and the resources running ones hold, users); a user's summary stays their own."""

from __future__ import annotations

import uuid

import pytest

from streamspace.db import execute
from tests.conftest import client_for

from .conftest import make_node, unique


@pytest.fixture(scope="module")
def metrics(serve, sim) -> str:
    return serve("metrics")


def test_operators_see_the_cluster_block_and_users_do_not(metrics, core):
    admin = client_for(metrics, f"admin-{uuid.uuid4().hex[:6]}", "admin")
    alice = client_for(metrics, f"alice-{uuid.uuid4().hex[:6]}")
    before = admin.get("/api/v1/metrics").json()["cluster"]
    make_node(core, unique("node"), cpu="4", memory="8Gi")
    execute("INSERT INTO sessions (namespace, name, user_id, username, template, state, cpu_millis, memory_bytes,"
            " storage_bytes, persistent_home, tags) VALUES ('streamspace', %s, %s, %s, 'firefox', 'running', 1500,"
            " 2147483648, 0, false, '{}')", (unique("s"), alice.user_id, alice.username))
    after = admin.get("/api/v1/metrics").json()["cluster"]
    assert after["nodes"]["total"] == before["nodes"]["total"] + 1
    assert after["nodes"]["ready"] == before["nodes"]["ready"] + 1
    assert after["sessions"]["running"] == before["sessions"]["running"] + 1
    assert after["users"]["total"] == before["users"]["total"]  # both callers existed before the first read
    assert after["resources"]["cpu"] != before["resources"]["cpu"]
    mine = alice.get("/api/v1/metrics").json()
    assert mine["cluster"] is None
    assert mine["sessions"]["running"] == 1


@pytest.mark.parametrize(("status", "said"), [(503, "is unavailable (503"), (403, "refused the request (403")])
def test_the_cluster_block_says_why_nodes_are_missing(metrics, sim, status, said):
    """An unreachable cluster is said to be unavailable; RBAC refusing the node list is said to be a
    refusal, naming the RBAC to check, never 'unavailable'."""
    admin = client_for(metrics, f"admin-{uuid.uuid4().hex[:6]}", "admin")
    sim.inject_failure("GET", r".*/nodes$", status=status, times=1)
    block = admin.get("/api/v1/metrics").json()["cluster"]
    assert block["nodes"] is None and said in block["nodesError"]
    assert ("RBAC" in block["nodesError"]) == (status == 403)
    assert block["sessions"]["total"] >= 0


def test_the_summary_counts_repositories_and_catalog_templates(metrics):
    """The catalog's counts ride in the summary's one statement (the catalog store's fragments)."""
    alice = client_for(metrics, f"alice-{uuid.uuid4().hex[:6]}")
    before = alice.get("/api/v1/metrics").json()
    name = unique("repo")
    execute("INSERT INTO repositories (name, url, url_normalized) VALUES (%s, %s, %s)",
            (name, f"https://git.example.com/{name}.git", f"https://git.example.com/{name}"))
    execute("INSERT INTO catalog_templates (repository_id, name, manifest)"
            " SELECT id, 'firefox', '{}'::jsonb FROM repositories WHERE name = %s", (name,))
    after = alice.get("/api/v1/metrics").json()
    assert after["repositories"] == before["repositories"] + 1
    assert after["templates"] == before["templates"] + 1
