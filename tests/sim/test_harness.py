"""Harness features: request log, failure injection, labelling, kubeconfig, discovery, kubectl, CLI."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from sim_helpers import GROUP, PLURAL, VERSION, WIDGET_CRD, ProcessOutput, widget

from streamspace.local.server import unused_port
from streamspace.sim import SimCluster

REPO = Path(__file__).resolve().parents[2]


def test_request_log_counts(sim, custom, core, ns):
    sim.clear_requests()
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("r"))
    custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "r", {"spec": {"size": 3}})
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("absent", ns)
    assert sim.count() == 3
    assert sim.count("POST", f"/namespaces/{ns}/widgets") == 1
    assert sim.count(method="patch") == 1
    assert sim.count(path_contains="/configmaps/absent") == 1
    method, path, query, content_type, status = sim.requests[1]
    assert (method, path, content_type, status) == (
        "PATCH", f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/widgets/r", "application/merge-patch+json", 200)
    assert sim.requests[2].status == 404 and query == ""
    sim.clear_requests()
    assert sim.requests == []


def test_injected_failure(sim, custom, ns):
    sim.inject_failure(method="POST", path_regex=r"/widgets$", status=500, times=1, reason="InternalError")
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("i"))
    body = json.loads(err.value.body)
    assert err.value.status == 500
    assert (body["kind"], body["status"], body["reason"], body["code"]) == ("Status", "Failure", "InternalError", 500)
    # It happened instead of the request: nothing was created, and the next attempt goes through.
    assert custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"] == []
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("i"))
    sim.inject_failure(method=None, path_regex=r"/widgets/i$", status=409, times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as err:
            custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "i")
        assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "Conflict"
    custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "i")


def test_simulation_is_labelled_in_log_header_and_kubeconfig(caplog, tmp_path):
    with caplog.at_level(logging.WARNING, logger="streamspace.sim"):
        sim = SimCluster()
        url = sim.start()
    try:
        assert f"SIMULATED Kubernetes API server (test/demo harness, not a cluster) at {url}" in caplog.text
        with urllib.request.urlopen(f"{url}/version") as resp:
            assert resp.headers["X-Streamspace-Simulated"] == "true"
            assert "sim" in json.loads(resp.read())["gitVersion"]
        path = sim.write_kubeconfig(tmp_path / "kubeconfig", namespace="streamspace")
        text = Path(path).read_text()
        assert text.startswith("# SIMULATED Kubernetes API server")
        kc = yaml.safe_load(text)
        assert kc["current-context"] == "streamspace-sim"
        assert kc["clusters"][0] == {"name": "streamspace-sim", "cluster": {"server": url}}
        assert kc["contexts"][0]["context"]["namespace"] == "streamspace"
        # The official loader accepts it as is.
        api = client.CoreV1Api(config.new_client_from_config(config_file=path))
        assert {"default", "streamspace"} <= {n.metadata.name for n in api.list_namespace().items}
    finally:
        sim.stop()


def test_discovery_documents(sim):
    def get(path: str) -> dict:
        with urllib.request.urlopen(f"{sim.url}{path}") as resp:
            return json.loads(resp.read())

    core = {r["name"]: r for r in get("/api/v1")["resources"]}
    assert core["pods"]["namespaced"] and not core["nodes"]["namespaced"] and not core["namespaces"]["namespaced"]
    assert "pods/status" in core and "pods/eviction" in core and core["services"]["shortNames"] == ["svc"]
    apps = {r["name"]: r for r in get("/apis/apps/v1")["resources"]}
    assert apps["deployments"]["kind"] == "Deployment" and "deployments/status" in apps
    assert "watch" in apps["deployments"]["verbs"]
    groups = {g["name"] for g in get("/apis")["groups"]}
    assert {"apps", "networking.k8s.io", GROUP, "apiextensions.k8s.io"} <= groups
    widgets = {r["name"]: r for r in get(f"/apis/{GROUP}/{VERSION}")["resources"]}
    assert widgets["widgets"]["shortNames"] == ["wg"] and "widgets/status" in widgets
    assert get("/api")["versions"] == ["v1"]
    assert get("/version")["major"] == "1"
    with pytest.raises(urllib.error.HTTPError) as err:
        get("/apis/nope.example/v1")
    assert err.value.code == 404


def test_dynamic_client_discovers_and_lists(sim, api_client, custom, ns):
    from kubernetes.dynamic import DynamicClient

    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("dyn"))
    dyn = DynamicClient(api_client)
    res = dyn.resources.get(api_version=f"{GROUP}/{VERSION}", kind="Widget")
    assert [i.metadata.name for i in res.get(namespace=ns).items] == ["dyn"]
    deploys = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    assert deploys.get(namespace=ns).items == []


def _kubectl_binary() -> str:
    """kubectl from `make tools` (tools/bin), else from PATH; its absence is a failure, not a skip."""
    bundled = REPO / "tools" / "bin" / "kubectl"
    found = str(bundled) if bundled.is_file() else shutil.which("kubectl")
    if not found:
        pytest.fail("kubectl is needed: run `make tools` (or install kubectl on PATH)")
    return found


def test_kubectl_works_against_the_simulation(sim, tmp_path, ns):
    kubeconfig = sim.write_kubeconfig(tmp_path / "kc", namespace=ns)
    env = {**os.environ, "KUBECONFIG": kubeconfig, "HOME": str(tmp_path)}

    def kubectl(*args: str) -> str:
        proc = subprocess.run([_kubectl_binary(), *args], capture_output=True, text=True, env=env, timeout=30)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    manifest = tmp_path / "w.yaml"
    manifest.write_text(yaml.safe_dump(widget("from-kubectl")))
    kubectl("apply", "-f", str(manifest))
    assert "unchanged" in kubectl("apply", "-f", str(manifest))
    kubectl("apply", "--server-side", "-f", str(manifest))
    bogus = widget("bogus")
    bogus["spec"]["notInSchema"] = 1
    manifest.write_text(yaml.safe_dump(bogus))
    proc = subprocess.run(["kubectl", "apply", "-f", str(manifest)], capture_output=True, text=True, env=env,
                          timeout=30)
    assert proc.returncode != 0 and 'strict decoding error: unknown field "spec.notInSchema"' in proc.stderr
    out = json.loads(kubectl("get", "wg", "-o", "json"))
    assert [i["metadata"]["name"] for i in out["items"]] == ["from-kubectl"]
    assert "from-kubectl" in kubectl("get", "widgets")
    kubectl("delete", "wg", "from-kubectl")
    assert json.loads(kubectl("get", "wg", "-o", "json"))["items"] == []


def test_cli_runs_until_terminated(tmp_path):
    port = unused_port()
    kubeconfig = tmp_path / "kc"
    proc = subprocess.Popen([sys.executable, "-m", "streamspace.sim", "--port", str(port), "--crds", str(WIDGET_CRD),
                             "--kubeconfig", str(kubeconfig), "--kubelet-delay", "0"],
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    err = ProcessOutput(proc.stderr)
    try:
        err.wait_for_line(f"kubeconfig written to {kubeconfig}")  # written once the server listens
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/apis/{GROUP}/{VERSION}") as resp:
            assert resp.headers["X-Streamspace-Simulated"] == "true"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0
    assert "SIMULATED Kubernetes API server (test/demo harness, not a cluster)" in err.all_text()


def test_project_crds_load_and_serve():
    with SimCluster(crd_paths=[REPO / "crds" / "session.yaml", REPO / "crds" / "template.yaml"]) as sim:
        custom = client.CustomObjectsApi(sim.api_client())
        for plural in ("sessions", "templates"):
            assert custom.list_namespaced_custom_object("stream.space", "v1alpha1", "streamspace", plural)["items"] \
                == []
        session = {"apiVersion": "stream.space/v1alpha1", "kind": "Session", "metadata": {"name": "s1"},
                   "spec": {"user": "alice", "template": "firefox"}}
        created = custom.create_namespaced_custom_object("stream.space", "v1alpha1", "streamspace", "sessions",
                                                         session)
        assert created["spec"]["state"] == "running"  # crds.md: default running
        session["metadata"]["name"] = "s2"
        session["spec"]["state"] = "foo"
        with pytest.raises(ApiException) as err:
            custom.create_namespaced_custom_object("stream.space", "v1alpha1", "streamspace", "sessions", session)
        assert err.value.status == 422 and "spec.state: Unsupported value" in err.value.body
