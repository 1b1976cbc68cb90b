"""Least privilege, enforced: every function's real Kubernetes calls pass as its own ServiceAccount, with
the RBAC rendered from the kustomize tree (`kubectl kustomize knative/`) and from the Helm chart
(`helm template`) loaded into the simulated API server, which authorizes each call by those Roles (and
runs OwnerReferencesPermissionEnforcement); a Role missing a verb fails here (issue 19)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from streamspace import kube
from streamspace.db import execute
from streamspace.local.identities import function_accounts, serve_as_functions
from streamspace.reconcile.pullers import puller_name
from streamspace.sim import SimCluster
from tests.conftest import ROOT, client_for, environment
from tests.reconcile.reconcile_helpers import deliver, ping, session_manifest, template_manifest
from tests.shipping.conftest import helm_template, kustomize

EVENT_FUNCTIONS = ("session-reconcile", "template-reconcile", "idle-sweep", "resync", "catalog-sync")
# Both trees run sessions apart from the control plane (streamspace): their Roles are granted there.
NS = "streamspace-sessions"


def live(kind: str, name: str) -> dict[str, Any]:
    obj = kube.get(kind, name, NS)
    assert obj is not None, f"{kind} {name} does not exist in {NS}"
    obj.setdefault("kind", kind)
    return obj


def in_sessions_namespace(manifest: dict[str, Any]) -> dict[str, Any]:
    manifest["metadata"]["namespace"] = NS
    return manifest


@pytest.fixture(scope="module")
def trees(kubectl: str, helm: str) -> dict[str, list[dict[str, Any]]]:
    return {"kustomize": kustomize(kubectl, ROOT / "knative"), "chart": helm_template(helm)}


@pytest.fixture(scope="module")
def event_url(db_url: str) -> Iterator[Callable[[str], str]]:
    from streamspace.local.gateway import load_function_app
    from streamspace.local.server import BackgroundServer

    servers = {name: BackgroundServer(load_function_app(name)).start() for name in EVENT_FUNCTIONS}
    yield lambda name: servers[name].url
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module")
def api(serve: Callable[..., str]) -> str:
    return serve("sessions", "templates", "cluster", "metrics", "users", "config")


@contextmanager
def cluster_with(docs: list[dict[str, Any]], tmp: Path) -> Iterator[SimCluster]:
    """A simulated cluster enforcing `docs`' RBAC, with each function acting as its ServiceAccount."""
    sim = SimCluster(crd_paths=sorted((ROOT / "crds").glob("*.yaml")), kubelet_delay=0.0)
    sim.start()
    kubeconfig = serve_as_functions(sim, tmp / f"kubeconfig-{uuid.uuid4().hex[:6]}", docs)
    kube.reset_client()
    try:
        with environment(KUBECONFIG=kubeconfig, SESSIONS_NAMESPACE=NS):
            yield sim
    finally:
        kube.reset_client()
        sim.stop()


def refused(sim: SimCluster) -> list[Any]:
    return [r for r in sim.requests if r.status in (401, 403)]


def without_verb(docs: list[dict[str, Any]], role: str, resource: str, verb: str) -> list[dict[str, Any]]:
    """The tree with `verb` on `resource` taken out of the Role `role` (and nothing else changed)."""
    out = copy.deepcopy(docs)
    found = False
    for doc in out:
        if doc.get("kind") == "Role" and doc["metadata"]["name"] == role:
            rules = []
            for rule in doc["rules"]:
                if resource in rule["resources"] and verb in rule["verbs"]:
                    found = True
                    others = [r for r in rule["resources"] if r != resource]
                    if others:
                        rules.append({**rule, "resources": others})
                    rules.append({**rule, "resources": [resource], "verbs": [v for v in rule["verbs"] if v != verb]})
                else:
                    rules.append(rule)
            doc["rules"] = rules
    assert found, f"Role {role} grants no {verb} on {resource}"
    return out


def install_template(event_url: Callable[[str], str], name: str) -> None:
    template = kube.create(in_sessions_namespace(template_manifest(name)))
    template.setdefault("kind", "Template")
    assert deliver(event_url("template-reconcile"), "add", template) == 200


@pytest.mark.parametrize("tree", ["kustomize", "chart"])
def test_every_function_works_as_its_own_service_account(tree: str, trees: dict, api: str, event_url: Callable,
                                                          tmp_path: Path) -> None:
    docs = trees[tree]
    accounts = function_accounts(docs, "streamspace")
    assert set(accounts) == {p.parent.name for p in (ROOT / "functions").glob("*/main.py")}
    assert len({a for a in accounts.values() if a is not None}) == len([a for a in accounts.values() if a]), \
        "two functions share a ServiceAccount"
    # Functions that make no Kubernetes calls get no token at all.
    assert {fn for fn, a in accounts.items() if a is None} == {
        "auth", "auth-check", "users", "config", "webhooks", "catalog-sync", "dead-letter", "storage"}
    suffix = uuid.uuid4().hex[:6]
    with cluster_with(docs, tmp_path) as sim:
        admin = client_for(api, f"root-{tree}-{suffix}", "admin")
        alice = client_for(api, f"alice-{tree}-{suffix}")
        # templates: create, read, list, replace
        created = admin.post("/api/v1/templates", json={
            "name": "firefox", "displayName": "Firefox", "baseImage": "lscr.io/linuxserver/firefox:latest",
            "defaultResources": {"memory": "1Gi", "cpu": "500m"}, "vnc": {"enabled": True, "port": 3000},
            "prePull": True})
        assert created.status_code == 201, created.text
        assert admin.patch("/api/v1/templates/firefox", json={"displayName": "Firefox ESR"}).status_code == 200
        assert admin.get("/api/v1/templates").status_code == 200
        # template-reconcile: read it, write its status, look for its Sessions
        assert deliver(event_url("template-reconcile"), "update", live("Template", "firefox")) == 200
        assert live("Template", "firefox")["status"]["phase"] == "Ready"
        # ... and keep its image puller in the sessions namespace, counted from the puller's own events
        puller = puller_name("lscr.io/linuxserver/firefox:latest")
        assert deliver(event_url("template-reconcile"), "update", live("DaemonSet", puller)) == 200
        assert live("Template", "firefox")["status"]["prePull"]["nodesReady"] >= 1
        # sessions: create; session-reconcile applies the owned set (blockOwnerDeletion) and the status
        launched = alice.post("/api/v1/sessions", json={"template": "firefox"})
        assert launched.status_code == 201, launched.text
        name = launched.json()["name"]
        assert deliver(event_url("session-reconcile"), "add", live("Session", name)) == 200
        owner = live("Deployment", f"ss-{name}")["metadata"]["ownerReferences"][0]
        assert owner["kind"] == "Session" and owner["blockOwnerDeletion"] is True
        assert live("Session", name)["status"]["phase"] in ("Pending", "Running")
        assert deliver(event_url("session-reconcile"), "update", live("Session", name)) == 200
        # idle-sweep hibernates it (patch + a Kubernetes Event); the owner wakes it (sessions: patch)
        execute("UPDATE sessions SET last_activity = now() - interval '2 hours' WHERE name = %s", (name,))
        assert ping(event_url("idle-sweep"), "idle-sweep") == 200
        assert live("Session", name)["spec"]["state"] == "hibernated"
        assert alice.patch(f"/api/v1/sessions/{name}", json={"state": "running"}).status_code == 200
        assert alice.get(f"/api/v1/sessions/{name}").status_code == 200
        # resync lists everything and repairs through both reconcilers
        kube.delete("Service", f"ss-{name}", NS)
        assert ping(event_url("resync"), "resync") == 200
        assert live("Service", f"ss-{name}")
        # catalog-sync needs no cluster at all; cluster views read nodes, pods, deployments
        assert ping(event_url("catalog-sync"), "catalog-sync") == 200
        assert admin.get("/api/v1/admin/nodes").status_code == 200
        assert admin.get("/api/v1/cluster/pods").status_code == 200
        metrics = admin.get("/api/v1/metrics")
        assert metrics.status_code == 200, metrics.text
        assert metrics.json()["cluster"]["nodes"] is not None  # metrics may list nodes (and nothing else)
        # deletes
        assert alice.delete(f"/api/v1/sessions/{name}").status_code in (200, 204)
        last = live("Template", "firefox")
        assert admin.delete("/api/v1/templates/firefox").status_code in (200, 204)
        assert deliver(event_url("template-reconcile"), "delete", last) == 200
        assert kube.get("DaemonSet", puller, NS) is None  # the last template of that image went
        # Sessions and Templates in another namespace are answered, through the reconcilers' ClusterRoles.
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "workspaces"}})
        for kind, manifest, function in (("Template", template_manifest("elsewhere"), "template-reconcile"),
                                         ("Session", session_manifest("elsewhere"), "session-reconcile")):
            manifest["metadata"]["namespace"] = "workspaces"
            created = {"kind": kind, **kube.create(manifest)}
            assert deliver(event_url(function), "add", created) == 200
            status = kube.get(kind, "elsewhere", "workspaces")["status"]
            assert status["conditions"][0]["reason"] == "NamespaceNotServed", kind
        assert refused(sim) == [], "a function was refused by its own ServiceAccount's RBAC"
        assert any(r.method == "PATCH" and r.path.endswith("/status") for r in sim.requests)


@pytest.mark.parametrize("tree", ["kustomize", "chart"])
def test_the_reconciler_without_sessions_finalizers_cannot_own_objects(tree: str, trees: dict, event_url: Callable,
                                                                       tmp_path: Path) -> None:
    """blockOwnerDeletion on the owned objects needs `update` on sessions/finalizers
    (OwnerReferencesPermissionEnforcement): without it, creating the Deployment is refused."""
    docs = without_verb(trees[tree], "streamspace-session-reconcile", "sessions/finalizers", "update")
    with cluster_with(docs, tmp_path) as sim:
        install_template(event_url, "firefox")
        session = kube.create(in_sessions_namespace(session_manifest(f"nofin-{tree}")))
        session.setdefault("kind", "Session")
        # A refusal is permanent for the reconciler: the Session fails with the API server's reason.
        assert deliver(event_url("session-reconcile"), "add", session) == 200
        status = live("Session", f"nofin-{tree}")["status"]
        assert status["phase"] == "Failed"
        assert "sessions/finalizers" in status["message"] and "blockOwnerDeletion" in status["message"]
        assert kube.get("Deployment", f"ss-nofin-{tree}", NS) is None
        assert any(r.status == 403 for r in sim.requests)


@pytest.mark.parametrize("tree", ["kustomize", "chart"])
def test_resync_without_listing_claims_fails(tree: str, trees: dict, event_url: Callable, tmp_path: Path) -> None:
    docs = without_verb(trees[tree], "streamspace-resync", "persistentvolumeclaims", "list")
    with cluster_with(docs, tmp_path) as sim:
        assert ping(event_url("resync"), "resync") == 422  # RBAC fails the same way again: not retried
        assert [r.path for r in refused(sim)] == [f"/api/v1/namespaces/{NS}/persistentvolumeclaims"]


def test_a_function_without_a_token_is_refused_not_promoted(trees: dict, api: str, tmp_path: Path) -> None:
    """The config function mounts no token: were it to call the API it would be refused (401), never
    fall back to another identity."""
    with cluster_with(trees["kustomize"], tmp_path) as sim:
        from streamspace.observability import function_var

        token = function_var.set("config")
        try:
            with pytest.raises(kube.KubeError) as refusal:
                kube.list_objects("Session", NS)
        finally:
            function_var.reset(token)
        assert refusal.value.status == 401
        assert refused(sim)


@pytest.mark.parametrize("tree", ["kustomize", "chart"])
def test_the_local_relay_watches_as_the_sources_service_account(tree: str, trees: dict, tmp_path: Path) -> None:
    """`make run`'s relay stands in for the ApiServerSource adapters and acts as their ServiceAccount, not
    as the harness administrator: with the sources' Role its watches start; without `list` on sessions
    the Session watch is refused."""
    from streamspace.local.relay import Relay
    from tests.sim.sim_helpers import eventually

    docs = trees[tree]
    with cluster_with(docs, tmp_path) as sim:
        relay = Relay({}, NS).start(watch=True, schedule=False)
        try:
            assert relay.wait_watching(120)
        finally:
            relay.stop()
        assert refused(sim) == []
    # Take `list` on sessions from every rule that grants it to the sources' account (Role or ClusterRole).
    narrowed = copy.deepcopy(docs)
    taken = 0
    for doc in narrowed:
        if doc.get("kind") in ("Role", "ClusterRole") and doc["metadata"]["name"].startswith(
                "streamspace-apiserversource"):
            for rule in doc["rules"]:
                if "sessions" in rule["resources"] and "list" in rule["verbs"]:
                    rule["verbs"] = [v for v in rule["verbs"] if v != "list"]
                    taken += 1
    assert taken
    with cluster_with(narrowed, tmp_path) as sim:
        relay = Relay({}, NS).start(watch=True, schedule=False)
        try:
            eventually(lambda: any(r.status == 403 and r.path.endswith("/sessions") for r in sim.requests),
                       "the Session watch's list refused")
            assert not relay.wait_watching(0)
        finally:
            relay.stop()
