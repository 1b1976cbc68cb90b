"""Pods pass the Pod Security level of the namespace they run in (pod-security-admission's checks,
streamspace.domain.pod_security), in both the kustomize tree and the chart (issue 19)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from streamspace.domain.pod_security import violations
from streamspace.domain.templates import parse_template_spec
from streamspace.reconcile.desired import desired_objects
from streamspace.settings.effective import ReconcileConfig
from tests.conftest import ROOT
from tests.shipping.conftest import helm_template, kustomize

SAMPLES = sorted((ROOT / "crds" / "samples").glob("template-*.yaml"))


@pytest.fixture(scope="module")
def trees(kubectl: str, helm: str) -> dict[str, list[dict[str, Any]]]:
    return {"kustomize": kustomize(kubectl, ROOT / "knative"), "chart": helm_template(helm)}


def enforced_level(docs: list[dict[str, Any]], namespace: str) -> str:
    found = [d for d in docs if d.get("kind") == "Namespace" and d["metadata"]["name"] == namespace]
    assert found, f"the tree does not create namespace {namespace}"
    labels = found[0]["metadata"].get("labels") or {}
    level = labels.get("pod-security.kubernetes.io/enforce")
    assert level, f"namespace {namespace} enforces no Pod Security level"
    return str(level)


def session_pod(sample: Path, namespace: str, **opt_in: Any) -> dict[str, Any]:
    template = parse_template_spec({**yaml.safe_load(sample.read_text())["spec"], **opt_in})
    session = {"apiVersion": "stream.space/v1alpha1", "kind": "Session",
               "metadata": {"name": "s1", "namespace": namespace, "uid": "u-1", "generation": 1},
               "spec": {"user": "alice", "template": sample.stem, "state": "running"}}
    # The samples' env may read Secrets an admin marked for templates (kasm-vnc, docs/security.md).
    marked = tuple(ref["name"] for var in template.env for kind, ref in (var.get("valueFrom") or {}).items()
                   if kind == "secretKeyRef")
    objects = desired_objects(session, template, ReconcileConfig(env_secrets=marked))
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert {o["metadata"]["namespace"] for o in objects} == {namespace}, "a Session's objects live with it"
    return dict(deployment["spec"]["template"])


def configured(docs: list[dict[str, Any]], setting: str) -> str:
    maps = [d for d in docs if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == "streamspace-config"]
    assert len(maps) == 1
    return str(maps[0]["data"][setting])


@pytest.mark.parametrize("tree", ["kustomize", "chart"])
def test_sessions_run_apart_from_the_control_plane(tree: str, trees: dict) -> None:
    """The control plane's namespace enforces restricted, the sessions namespace baseline (and warns and
    audits restricted); the functions' Roles are in the sessions namespace, bound to their accounts."""
    docs = trees[tree]
    control, sessions = configured(docs, "STREAMSPACE_NAMESPACE"), configured(docs, "SESSIONS_NAMESPACE")
    assert control != sessions
    # The chart cannot label the release namespace it is installed into (docs/deploy.md labels it).
    assert enforced_level(trees["kustomize"], "streamspace") == "restricted"
    assert enforced_level(docs, sessions) == "baseline"
    labels = next(d for d in docs if d.get("kind") == "Namespace" and d["metadata"]["name"] == sessions)["metadata"]
    assert labels["labels"]["pod-security.kubernetes.io/warn"] == "restricted"
    if tree == "chart":  # the users' home claims live there: helm uninstall keeps it
        assert labels["annotations"]["helm.sh/resource-policy"] == "keep"
    roles = [d for d in docs if d.get("kind") in ("Role", "RoleBinding")]
    assert {d["metadata"].get("namespace", control) for d in roles
            if d["metadata"]["name"] != "streamspace-apiserversource-events"} == {sessions}
    for binding in (d for d in roles if d["kind"] == "RoleBinding"):
        assert all(s["namespace"] == control for s in binding["subjects"]), binding["metadata"]["name"]
    pods = [d for d in docs if d.get("kind") in ("StatefulSet", "Job")
            or (d.get("kind") == "Service" and str(d.get("apiVersion")).startswith("serving.knative.dev/"))]
    assert pods and all(d["metadata"].get("namespace", control) == control for d in pods)
    # Session Ingresses send the ticket redeem to a Service of their own namespace.
    redeem = [d for d in docs if d.get("kind") == "Service" and d["metadata"]["name"] == "auth-check-redeem"
              and d["metadata"].get("namespace") == sessions]
    assert redeem and redeem[0]["spec"]["externalName"] == f"auth-check-redeem.{control}.svc.cluster.local"


@pytest.mark.parametrize("tree", ["kustomize", "chart"])
@pytest.mark.parametrize("sample", SAMPLES, ids=[s.stem for s in SAMPLES])
def test_session_pods_pass_their_namespaces_level(tree: str, sample: Path, trees: dict) -> None:
    docs = trees[tree]
    namespace = configured(docs, "SESSIONS_NAMESPACE")
    level = enforced_level(docs, namespace)
    assert level == "baseline"
    pod = session_pod(sample, namespace)
    assert violations(pod["spec"], level, pod.get("metadata")) == []
    spec = pod["spec"]
    # The hardening that applies even at baseline.
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = spec["containers"][0]["securityContext"]
    assert context["allowPrivilegeEscalation"] is False and context["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.stem for s in SAMPLES])
def test_templates_that_opt_into_non_root_pass_restricted(sample: Path) -> None:
    """spec.runAsUser: the image runs as that user, so the pod passes restricted (without it, a root
    desktop does not: test_the_checks_refuse_what_pod_security_admission_refuses)."""
    pod = session_pod(sample, "streamspace-sessions", runAsUser=1000)
    assert violations(pod["spec"], "restricted", pod.get("metadata")) == []
    context = pod["spec"]["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] == 1000 and context["fsGroup"] == 1000
    assert "add" not in pod["spec"]["containers"][0]["securityContext"]["capabilities"]


@pytest.mark.parametrize("tree", ["kustomize", "chart"])
def test_control_plane_pods_pass_restricted(tree: str, trees: dict) -> None:
    pods = [(f"Service/{d['metadata']['name']}", d["spec"]["template"]) for d in trees[tree]
            if d.get("kind") == "Service" and str(d.get("apiVersion")).startswith("serving.knative.dev/")]
    pods += [(f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]) for d in trees[tree]
             if d.get("kind") in ("Job", "StatefulSet")]
    assert len(pods) > 15
    for name, template in pods:
        assert violations(template["spec"], "restricted", template.get("metadata")) == [], name


def test_the_checks_refuse_what_pod_security_admission_refuses() -> None:
    pod = session_pod(SAMPLES[0], "streamspace")["spec"]
    assert "runAsNonRoot != true" in violations(pod, "restricted")  # a root desktop is not restricted
    bad = {**pod, "hostNetwork": True, "volumes": [*pod["volumes"], {"name": "h", "hostPath": {"path": "/"}}]}
    assert {"host namespaces", "hostPath volumes"} <= set(violations(bad, "baseline"))
    container = {**pod["containers"][0]}
    container["securityContext"] = {**container["securityContext"], "privileged": True,
                                    "capabilities": {"add": ["SYS_ADMIN"]}}
    assert {"privileged", "non-default capabilities"} <= set(violations({**pod, "containers": [container]},
                                                                      "baseline"))
    unconfined = {**pod, "securityContext": {"seccompProfile": {"type": "Unconfined"}}}
    assert violations(unconfined, "baseline") == ["seccompProfile"]
    assert violations(bad, "privileged") == []
