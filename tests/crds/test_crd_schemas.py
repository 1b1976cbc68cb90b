"""The CRDs in crds/ against the SIMULATED Kubernetes API server (test harness, not a cluster).

Objects go through the official kubernetes client exactly as `kubectl apply` would send them:
samples must be created (201), deliberately bad objects refused (422), defaults applied.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from streamspace.domain.duration import DURATION_PATTERN
from streamspace.domain.names import DNS_LABEL_PATTERN
from streamspace.domain.quantity import QUANTITY_PATTERN
from streamspace.domain.templates import (
    CLOCK_END_PATTERN,
    CLOCK_PATTERN,
    ENV_NAME_PATTERN,
    ICON_PATTERN,
    IMAGE_PATTERN,
    normalise_template_manifest,
)
from streamspace.sim import SimCluster

CRDS = Path(__file__).resolve().parents[2] / "crds"
CRD_FILES = {"sessions": CRDS / "session.yaml", "templates": CRDS / "template.yaml"}
GROUP, VERSION, NAMESPACE = "stream.space", "v1alpha1", "streamspace"


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def schema_of(plural: str) -> dict[str, Any]:
    return load(CRD_FILES[plural])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.fixture(scope="module")
def objects():
    cluster = SimCluster(crd_paths=list(CRD_FILES.values()))
    cluster.start()
    api = cluster.api_client()
    try:
        yield client.CustomObjectsApi(api)
    finally:
        api.close()
        cluster.stop()


_counter = iter(range(10**6))


def create(objects: client.CustomObjectsApi, plural: str, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Create under a fresh name (tests share one cluster); returns (object, HTTP status)."""
    body = copy.deepcopy(body)
    meta = body.setdefault("metadata", {})
    meta["name"] = f"{meta.get('name', 'obj')}-{next(_counter)}"
    meta["namespace"] = NAMESPACE
    data, status, _ = objects.create_namespaced_custom_object_with_http_info(GROUP, VERSION, NAMESPACE, plural, body)
    return data, status


def refused(objects: client.CustomObjectsApi, plural: str, body: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as caught:
        create(objects, plural, body)
    assert caught.value.status == 422, caught.value.body
    return str(caught.value.body)


def session(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Session",
        "metadata": {"name": "s"},
        "spec": {"user": "alice", "template": "firefox", **spec},
    }


def template(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Template",
        "metadata": {"name": "t"},
        "spec": {"displayName": "Firefox", "baseImage": "lscr.io/linuxserver/firefox:latest", **spec},
    }


def without(body: dict[str, Any], key: str) -> dict[str, Any]:
    body = copy.deepcopy(body)
    del body["spec"][key]
    return body


# --- samples ----------------------------------------------------------------------------------------


SAMPLES = sorted((CRDS / "samples").glob("*.yaml"))


def test_required_samples_exist():
    names = {load(p)["metadata"]["name"] for p in SAMPLES if load(p)["kind"] == "Template"}
    assert {"firefox", "chromium", "vscode", "libreoffice", "gimp", "ubuntu-desktop"} <= names
    assert any(load(p)["kind"] == "Session" for p in SAMPLES)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_samples_accepted(objects, path):
    doc = load(path)
    created, status = create(objects, doc["kind"].lower() + "s", doc)
    assert status == 201
    assert created["spec"]["displayName" if doc["kind"] == "Template" else "user"]


@pytest.mark.parametrize("path", sorted((CRDS / "legacy").glob("*.yaml")), ids=lambda p: p.name)
def test_converted_legacy_templates_accepted(objects, path):
    created, status = create(objects, "templates", normalise_template_manifest(load(path)))
    assert status == 201 and created["spec"]["vnc"]


def test_a_template_is_enabled_unless_it_says_otherwise(objects):
    created, _ = create(objects, "templates", template(vnc={}))
    assert created["spec"]["enabled"] is True  # the schema's default, filled in by the API server
    disabled, _ = create(objects, "templates", {**template(vnc={}, enabled=False), "metadata": {"name": "t-off"}})
    assert disabled["spec"]["enabled"] is False


def test_legacy_kasmvnc_key_accepted_as_is(objects):
    created, _ = create(objects, "templates", template(kasmvnc={"enabled": True, "port": 3000}))
    assert created["spec"]["kasmvnc"] == {"enabled": True, "port": 3000}


# --- defaults ---------------------------------------------------------------------------------------


def test_session_defaults(objects):
    created, _ = create(objects, "sessions", session())
    assert created["spec"] == {
        "user": "alice",
        "template": "firefox",
        "state": "running",
        "persistentHome": True,
        "idleTimeout": "30m",
        "maxSessionDuration": "8h",
    }


def test_template_defaults(objects):
    created, _ = create(objects, "templates", template(vnc={}, ports=[{"containerPort": 3000}], webapp={"port": 8080}))
    spec = created["spec"]
    assert spec["appType"] == "desktop"
    assert spec["vnc"] == {"enabled": True, "port": 3000, "protocol": "websocket", "encryption": False}
    assert spec["ports"] == [{"containerPort": 3000, "protocol": "TCP"}]
    assert spec["webapp"] == {"enabled": True, "port": 8080, "path": "/"}


def test_quantities_may_be_integers(objects):
    created, _ = create(objects, "sessions", session(resources={"cpu": 2, "memory": "4Gi"}))
    assert created["spec"]["resources"] == {"cpu": 2, "memory": "4Gi"}


# --- refusals ---------------------------------------------------------------------------------------


BAD_SESSIONS = {
    "bad state": (session(state="paused"), "spec.state"),
    "bad idle duration": (session(idleTimeout="30 minutes"), "spec.idleTimeout"),
    "bad max duration": (session(maxSessionDuration="1d"), "spec.maxSessionDuration"),
    "bad quantity": (session(resources={"memory": "2GB"}), "spec.resources.memory"),
    "negative quantity": (session(resources={"requests": {"cpu": "-1"}}), "spec.resources.requests.cpu"),
    "negative integer quantity": (session(resources={"cpu": -1}), "spec.resources.cpu"),
    "mixed resource shapes": (session(resources={"memory": "2Gi", "limits": {"cpu": "1"}}), "spec.resources"),
    "missing template": (without(session(), "template"), "spec.template"),
    "missing user": (without(session(), "user"), "spec.user"),
    "non-DNS user": (session(user="Alice Smith"), "spec.user"),
    "non-DNS template": (session(template="Firefox_ESR"), "spec.template"),
    "persistentHome not bool": (session(persistentHome="yes"), "spec.persistentHome"),
    "missing spec": ({"apiVersion": f"{GROUP}/{VERSION}", "kind": "Session", "metadata": {"name": "s"}}, "spec"),
}

BAD_TEMPLATES = {
    "missing baseImage": (without(template(), "baseImage"), "spec.baseImage"),
    "missing displayName": (without(template(), "displayName"), "spec.displayName"),
    "bad image": (template(baseImage="not an image"), "spec.baseImage"),
    "port 70000": (template(ports=[{"containerPort": 70000}]), "spec.ports[0].containerPort"),
    "port 0": (template(vnc={"port": 0}), "spec.vnc.port"),
    "legacy port 70000": (template(kasmvnc={"port": 70000}), "spec.kasmvnc.port"),
    "bad protocol": (template(ports=[{"containerPort": 80, "protocol": "SCTP"}]), "spec.ports[0].protocol"),
    "bad vnc protocol": (template(vnc={"protocol": "vnc"}), "spec.vnc.protocol"),
    "bad appType": (template(appType="game"), "spec.appType"),
    "capability not a string": (template(capabilities=[7]), "spec.capabilities[0]"),
    "bad quantity": (template(defaultResources={"cpu": "lots"}), "spec.defaultResources.cpu"),
    "env without name": (template(env=[{"value": "x"}]), "spec.env[0].name"),
    "relative mountPath": (
        template(volumeMounts=[{"name": "user-home", "mountPath": "config"}]),
        "spec.volumeMounts[0].mountPath",
    ),
    "javascript icon": (template(icon="javascript:alert(1)"), "spec.icon"),
    "root user": (template(runAsUser=0), "spec.runAsUser"),
    "group without user": (template(runAsGroup=1000), "spec.runAsGroup"),
    "enabled not a boolean": (template(enabled="no"), "spec.enabled"),
}


@pytest.mark.parametrize(("body", "field"), BAD_SESSIONS.values(), ids=BAD_SESSIONS.keys())
def test_bad_sessions_refused(objects, body, field):
    assert field in refused(objects, "sessions", body)


@pytest.mark.parametrize(("body", "field"), BAD_TEMPLATES.values(), ids=BAD_TEMPLATES.keys())
def test_bad_templates_refused(objects, body, field):
    assert field in refused(objects, "templates", body)


# --- status subresource -------------------------------------------------------------------------------


def test_status_subresource_validates(objects):
    created, _ = create(objects, "sessions", session())
    name = created["metadata"]["name"]
    good = {
        "status": {
            "phase": "Running",
            "podName": "p",
            "url": "https://x.example.com",
            "lastActivity": "2025-01-01T00:00:00Z",
            "resourceUsage": {"cpu": "250m", "memory": "1Gi"},
            "observedGeneration": 1,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "PodReady",
                    "message": "",
                    "lastTransitionTime": "2025-01-01T00:00:00Z",
                }
            ],
        }
    }
    patched = objects.patch_namespaced_custom_object_status(GROUP, VERSION, NAMESPACE, "sessions", name, good)
    assert patched["status"]["phase"] == "Running"
    for bad in (
        {"phase": "Sleeping"},
        {"lastActivity": "yesterday"},
        {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "Maybe",
                    "reason": "X",
                    "message": "",
                    "lastTransitionTime": "2025-01-01T00:00:00Z",
                }
            ]
        },
    ):
        with pytest.raises(ApiException) as caught:
            objects.patch_namespaced_custom_object_status(GROUP, VERSION, NAMESPACE, "sessions", name, {"status": bad})
        assert caught.value.status == 422


def test_template_status_phase_enum(objects):
    created, _ = create(objects, "templates", template(vnc={}))
    name = created["metadata"]["name"]
    objects.patch_namespaced_custom_object_status(
        GROUP, VERSION, NAMESPACE, "templates", name, {"status": {"phase": "Invalid", "message": "no stream port"}}
    )
    with pytest.raises(ApiException) as caught:
        objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, NAMESPACE, "templates", name, {"status": {"phase": "Broken"}}
        )
    assert caught.value.status == 422


# --- definitions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plural", "kind", "short", "columns"),
    [
        ("sessions", "Session", "ss", ["User", "Template", "State", "Phase", "URL", "Age"]),
        ("templates", "Template", "tpl", ["Display Name", "Category", "Image", "Phase", "Enabled", "Pre-pulled",
                                                 "Age"]),
    ],
)
def test_definition(plural, kind, short, columns):
    crd = load(CRD_FILES[plural])
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1" and crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == f"{plural}.{GROUP}"
    spec = crd["spec"]
    assert spec["group"] == GROUP and spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == kind and spec["names"]["plural"] == plural
    assert spec["names"]["shortNames"] == [short] and spec["names"]["categories"] == ["streamspace"]
    (version,) = spec["versions"]
    assert version["name"] == VERSION and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == columns
    assert version["additionalPrinterColumns"][-1]["jsonPath"] == ".metadata.creationTimestamp"


def test_definitions_valid_for_kubernetes():
    import kubernetes_validate

    for path in CRD_FILES.values():
        kubernetes_validate.validate(load(path), "1.33.0", strict=True)


def _nodes(node: dict[str, Any], path: str = ""):
    """Every schema node reachable through properties and items, with its field path."""
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from _nodes(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _nodes(node["items"], f"{path}[]")


def _keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node).union(*(_keys(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_keys(v) for v in node))
    return set()


@pytest.mark.parametrize("plural", CRD_FILES)
def test_schemas_are_structural(plural):
    # The API server's structural rules that matter here: every node has a type (or is
    # int-or-string), and combinator branches carry no type, default or description.
    for path, node in _nodes(schema_of(plural)):
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node and node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
            continue
        assert "type" in node, path
        for combinator in ("not", "anyOf", "allOf", "oneOf"):
            assert not {"type", "default", "description"} & _keys(node.get(combinator)), path


def _patterns(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["pattern"]} if isinstance(node.get("pattern"), str) else set()
        return found.union(*(_patterns(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_patterns(v) for v in node))
    return set()


def test_patterns_are_the_domain_library_patterns():
    """The CRD and the Python library must accept the same text; they share the exact regexes."""
    session_patterns, template_patterns = _patterns(schema_of("sessions")), _patterns(schema_of("templates"))
    assert {DURATION_PATTERN, DNS_LABEL_PATTERN, QUANTITY_PATTERN} <= session_patterns
    assert {DNS_LABEL_PATTERN, QUANTITY_PATTERN, IMAGE_PATTERN, ICON_PATTERN, ENV_NAME_PATTERN, CLOCK_PATTERN,
            CLOCK_END_PATTERN, DURATION_PATTERN} <= template_patterns
