"""What trips a person upgrading from the earlier StreamSpace, checked at every edge: one name rule
(CRD, REST API, catalog), readable messages for every CEL rule, the earlier group's manifests
applied with kubectl, and `kubectl get tpl|ss` showing the CRDs' printer columns.

The CRD side runs against the SIMULATED API server, which evaluates `x-kubernetes-validations`
with a real CEL implementation and answers Table requests as the apiextensions-apiserver does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from streamspace.sim import SimCluster

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
EARLIER = ROOT / "tests" / "upgrade" / "earlier"
NS = "streamspace"


@pytest.fixture(scope="module")
def cluster():
    sim = SimCluster(crd_paths=sorted(CRDS.glob("*.yaml")))
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def objects(cluster):
    api = cluster.api_client()
    yield client.CustomObjectsApi(api)
    api.close()


def template(name: str, **spec: Any) -> dict[str, Any]:
    body = {"displayName": name, "baseImage": "lscr.io/linuxserver/firefox:latest", "vnc": {}, **spec}
    return {"apiVersion": "stream.space/v1alpha1", "kind": "Template", "metadata": {"name": name}, "spec": body}


def session(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "stream.space/v1alpha1", "kind": "Session", "metadata": {"name": name},
            "spec": {"user": "alice", "template": "firefox", **spec}}


def refusal(objects, plural: str, body: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as caught:
        objects.create_namespaced_custom_object("stream.space", "v1alpha1", NS, plural, body)
    assert caught.value.status == 422, caught.value.body
    return str(caught.value.body)


def test_a_name_that_breaks_the_name_rule_is_refused_by_the_crd_in_words(objects):
    message = refusal(objects, "templates", template("changedetection.io"))
    assert "metadata.name" in message
    assert "must be a DNS-1123 label of at most 63 characters" in message
    assert "python -m streamspace convert-template renames such names" in message
    message = refusal(objects, "sessions", session("alice.firefox"))
    assert "must be a DNS-1123 label of at most 60 characters" in message
    objects.create_namespaced_custom_object("stream.space", "v1alpha1", NS, "templates",
                                            template("changedetection-io"))


def test_mixed_resource_shapes_are_refused_with_a_message_a_person_can_read(objects):
    mixed = {"memory": "2Gi", "cpu": "1", "limits": {"memory": "4Gi"}}
    message = refusal(objects, "templates", template("mixed", defaultResources=mixed))
    assert "spec.defaultResources" in message
    assert "takes either the short form {memory, cpu} (requests = limits) or" in message
    assert "must not validate the schema (not)" not in message
    message = refusal(objects, "sessions", session("mixed", resources=mixed))
    assert "spec.resources" in message and "resources takes either the short form" in message
    # The earlier project's flat shape alone is fine.
    objects.create_namespaced_custom_object("stream.space", "v1alpha1", NS, "templates",
                                            template("flat", defaultResources={"memory": "2Gi", "cpu": "1000m"}))


def test_every_cel_rule_in_the_crds_carries_a_message_and_no_not_rule_is_left():
    def walk(node: Any, path: str) -> list[str]:
        found = []
        if isinstance(node, dict):
            if "not" in node:
                found.append(f"{path}: a `not` rule (its API error is unreadable)")
            for rule in node.get("x-kubernetes-validations") or []:
                if not rule.get("message") and not rule.get("messageExpression"):
                    found.append(f"{path}: rule {rule.get('rule')!r} has no message")
            for key, value in node.items():
                found += walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                found += walk(value, f"{path}[{index}]")
        return found

    rules = 0
    problems = []
    for path in sorted(CRDS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            problems += walk(doc, path.name)
            rules += str(doc).count("x-kubernetes-validations")
    assert problems == []
    assert rules >= 4  # the name rule and the resources rule, in both CRDs


def test_a_rule_the_simulator_cannot_compile_fails_the_crd_registration_with_its_name(cluster):
    crd = yaml.safe_load((CRDS / "template.yaml").read_text())
    crd["metadata"]["name"] = "gadgets.example.com"
    crd["spec"]["group"] = "example.com"
    crd["spec"]["names"] = {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"}
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-validations"] = [
        {"rule": "self.spec.size.(", "message": "broken"}]
    api = client.ApiextensionsV1Api(cluster.api_client())
    with pytest.raises(ApiException) as caught:
        api.create_custom_resource_definition(crd)
    assert caught.value.status == 422
    assert "self.spec.size.(" in caught.value.body and "cannot be compiled" in caught.value.body


@pytest.fixture(scope="module")
def kubectl(cluster, tmp_path_factory):
    binary = ROOT / "tools" / "bin" / "kubectl"
    found = str(binary) if binary.is_file() else shutil.which("kubectl")
    if not found:
        pytest.fail("kubectl is needed: run `make tools` (or install kubectl on PATH)")
    home = tmp_path_factory.mktemp("kubectl")
    env = {**os.environ, "KUBECONFIG": cluster.write_kubeconfig(home / "config", namespace=NS), "HOME": str(home)}

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([found, *args], capture_output=True, text=True, env=env, timeout=60)
        if ok:
            assert proc.returncode == 0, proc.stderr
        return proc

    return run


def test_kubectl_get_shows_the_printer_columns(objects, kubectl):
    objects.create_namespaced_custom_object("stream.space", "v1alpha1", NS, "templates", template("firefox-tbl"))
    objects.create_namespaced_custom_object("stream.space", "v1alpha1", NS, "sessions",
                                            session("alice-tbl", template="firefox-tbl"))
    lines = kubectl("get", "tpl", "firefox-tbl").stdout.splitlines()
    assert lines[0].split() == ["NAME", "DISPLAY", "NAME", "CATEGORY", "IMAGE", "PHASE", "ENABLED", "AGE"]
    assert lines[1].split()[:3] == ["firefox-tbl", "firefox-tbl", "lscr.io/linuxserver/firefox:latest"]
    lines = kubectl("get", "ss").stdout.splitlines()
    assert lines[0].split() == ["NAME", "USER", "TEMPLATE", "STATE", "PHASE", "URL", "AGE"]
    row = next(line.split() for line in lines[1:] if line.startswith("alice-tbl"))
    assert row[:4] == ["alice-tbl", "alice", "firefox-tbl", "running"]
    assert row[-1].endswith("s")  # an age such as 3s, computed by the server


def test_manifests_of_the_earlier_group_apply_with_kubectl(kubectl, tmp_path):
    manifest = tmp_path / "earlier.yaml"
    manifest.write_text((EARLIER / "vscode.yaml").read_text().replace("namespace: streamspace\n", ""))
    applied = kubectl("apply", "-n", NS, "-f", str(manifest))
    assert "template.stream.streamspace.io/vscode created" in applied.stdout
    assert "template.stream.streamspace.io/chrome created" in applied.stdout
    listed = kubectl("get", "templates.stream.streamspace.io", "-n", NS).stdout.splitlines()
    assert listed[0].split() == ["NAME", "DISPLAY", "NAME", "CONVERTED", "SERVED", "AS", "AGE"]
    assert {line.split()[0] for line in listed[1:]} == {"vscode", "chrome"}
