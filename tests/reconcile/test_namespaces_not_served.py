"""Templates and Sessions outside the sessions namespace are answered with a condition saying why they
are not served, and nothing else happens for them (issue 17 item 5): no owned object, no index row, no
conversion. The earlier project's own files name `workspaces`; applied as they are, with the official
client, they are told where to go. The functions act as their own ServiceAccounts (the kustomize tree's
RBAC is enforced): the ClusterRoles grant exactly the status write this needs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from streamspace import kube
from streamspace.db import fetch_one

from .reconcile_helpers import NS, add_template, deliver, session_manifest, template_manifest, writes

ELSEWHERE = "workspaces"
EARLIER = Path(__file__).resolve().parents[1] / "upgrade" / "earlier"


@pytest.fixture(scope="module")
def urls(function_url, sim):
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ELSEWHERE}})
    return {"template": function_url("template-reconcile"), "session": function_url("session-reconcile")}


@pytest.fixture(scope="module")
def objects(sim) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(sim.api_client())


def elsewhere(manifest: dict[str, Any]) -> dict[str, Any]:
    manifest = copy.deepcopy(manifest)
    manifest["metadata"]["namespace"] = ELSEWHERE
    return manifest


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    return {c["type"]: c for c in obj["status"]["conditions"]}[ctype]


def test_a_template_elsewhere_says_which_namespace_is_served(urls, sim):
    created = kube.create(elsewhere(template_manifest("firefox")))
    created.setdefault("kind", "Template")
    assert deliver(urls["template"], "add", created) == 200
    answered = kube.get("Template", "firefox", ELSEWHERE)
    ready = condition(answered, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NamespaceNotServed")
    assert f"namespace {NS} only" in ready["message"] and "SESSIONS_NAMESPACE" in ready["message"]
    assert ELSEWHERE in ready["message"]
    assert answered["status"]["phase"] == "Invalid" and answered["status"]["observedGeneration"] == 1
    assert fetch_one("SELECT count(*) AS n FROM template_index WHERE namespace = %s", (ELSEWHERE,))["n"] == 0
    # The echo of that status write changes nothing.
    before = len(writes(sim.requests))
    answered.setdefault("kind", "Template")
    assert deliver(urls["template"], "update", answered) == 200
    assert len(writes(sim.requests)) == before


def test_a_session_elsewhere_fails_with_the_reason_and_creates_nothing(urls, sim):
    kube.create(elsewhere(template_manifest("firefox-too")))
    created = kube.create(elsewhere(session_manifest("lost", template="firefox-too")))
    created.setdefault("kind", "Session")
    assert deliver(urls["session"], "add", created) == 200
    answered = kube.get("Session", "lost", ELSEWHERE)
    ready = condition(answered, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NamespaceNotServed")
    assert answered["status"]["phase"] == "Failed" and f"create this Session in {NS}" in ready["message"]
    for kind in ("Deployment", "Service", "Ingress", "NetworkPolicy"):
        assert kube.list_objects(kind, ELSEWHERE) == [], kind
    assert kube.list_objects("PersistentVolumeClaim", ELSEWHERE) == []
    assert fetch_one("SELECT count(*) AS n FROM sessions WHERE namespace = %s", (ELSEWHERE,))["n"] == 0
    # Its deletion is no business of ours either.
    assert deliver(urls["session"], "delete", answered) == 200


def test_the_earlier_projects_files_applied_as_they_are_are_told_where_to_go(objects, urls):
    doc = list(yaml.safe_load_all((EARLIER / "gimp.yaml").read_text()))[0]
    assert doc["metadata"]["namespace"] == ELSEWHERE  # the file's own namespace
    created = objects.create_namespaced_custom_object("stream.streamspace.io", "v1alpha1", ELSEWHERE, "templates",
                                                      doc)
    assert deliver(urls["template"], "add", created) == 200
    legacy = objects.get_namespaced_custom_object("stream.streamspace.io", "v1alpha1", ELSEWHERE, "templates",
                                                  doc["metadata"]["name"])
    converted = condition(legacy, "Converted")
    assert (converted["status"], converted["reason"]) == ("False", "NamespaceNotServed")
    assert "convertedTo" not in legacy["status"]
    assert kube.get("Template", doc["metadata"]["name"], ELSEWHERE) is None  # not converted there


def test_the_served_namespace_is_served_as_before(urls):
    add_template(urls["template"], "served-here")
    assert condition(kube.get("Template", "served-here", NS), "Ready")["reason"] == "SpecValid"
