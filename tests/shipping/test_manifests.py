"""Kubernetes and Knative manifests: kustomize builds, Helm renders, CRDs and samples, all validated
against schemas offline (kubernetes-validate for core kinds, @kubernetes-models for Knative and the
Gateway API), plus the agreement between the kustomize base, the chart and the local runner's files."""

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from .conftest import (
    ROOT,
    functions_on_disk,
    helm_template,
    kustomize,
    load_docs,
    run,
    validate_all,
    validate_kubernetes,
    validate_models,
)

KNATIVE = ROOT / "knative"
HELM_VARIANTS = {
    "default": [],
    "kafka-gateway-external-db": [
        "--set", "eventing.brokerClass=Kafka", "--set", "ingress.gateway.create=true",
        "--set", "postgresql.enabled=false", "--set", "externalDatabase.host=db.example",
        "--set", "secrets.databaseUrl=postgresql://u:p@db.example/streamspace",
        "--set", "imagePullSecrets[0].name=ghcr-secret",
    ],
    "existing-secret-no-ingress": [
        "--set", "secrets.existingSecret=mine", "--set", "ingress.enabled=false",
        "--set", "postgresql.persistence.enabled=false", "--set", "api.replicas=2",
        "--set", "functions.auth.image.repository=registry.example/auth",
    ],
}


def by_kind(docs: list[dict[str, Any]], kind: str, api_prefix: str = "") -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs
            if d["kind"] == kind and str(d["apiVersion"]).startswith(api_prefix)}


@pytest.fixture(scope="module")
def base_docs(kubectl: str) -> list[dict[str, Any]]:
    return kustomize(kubectl, KNATIVE)


@pytest.fixture(scope="module")
def chart_docs(helm: str) -> list[dict[str, Any]]:
    return helm_template(helm)


# --- schema validation ------------------------------------------------------------------------------

@pytest.mark.parametrize("overlay", ["knative", "knative/overlays/kafka-broker", "knative/overlays/traefik"])
def test_kustomize_builds_and_validates(overlay: str, kubectl: str, tools: Path, tmp_path: Path) -> None:
    docs = kustomize(kubectl, ROOT / overlay)
    assert len(docs) > 30
    assert validate_all(tools, docs, tmp_path) == []
    # Everything in streamspace but the grant that lets the route reach Knative's internal gateway and,
    # in the sessions namespace, the functions' Roles, the ticket redeem's Service and (with Traefik) the
    # ForwardAuth Middleware the session Ingresses name.
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] not in ("Namespace", "ReferenceGrant")} \
        <= {"streamspace", "streamspace-sessions", None}
    assert {d["kind"] for d in docs if d["metadata"].get("namespace") == "streamspace-sessions"} \
        == {"Role", "RoleBinding", "Service"} | ({"Middleware"} if overlay.endswith("traefik") else set())


def test_the_traefik_middleware_comes_only_with_traefik_session_ingresses(kubectl: str, helm: str) -> None:
    """`kubectl apply -k knative/` works without Traefik's CRDs; the Middleware the session Ingresses name
    under Traefik comes with the traefik overlay, and with the chart when the sessions' controller is Traefik."""
    base = kustomize(kubectl, KNATIVE)
    assert not [d for d in base if str(d["apiVersion"]).startswith("traefik.io/")]
    with_traefik = kustomize(kubectl, KNATIVE / "overlays" / "traefik")
    middleware = by_kind(with_traefik, "Middleware", "traefik.io/")["streamspace-auth"]
    # Beside the session Ingresses (Traefik refuses cross-namespace references by default), under the
    # name the reconciler writes on each of them: <namespace>-<name>@kubernetescrd.
    assert middleware["metadata"]["namespace"] == "streamspace-sessions"
    from streamspace.settings.effective import ReconcileConfig

    named = ReconcileConfig.from_values({}, "streamspace", sessions_namespace="streamspace-sessions")
    assert named.traefik_middleware == "streamspace-sessions-streamspace-auth@kubernetescrd"
    charted = by_kind(helm_template(helm, "--set", "sessions.namespace=desktops"), "Middleware", "traefik.io/")
    assert charted["streamspace-auth"]["metadata"]["namespace"] == "desktops"
    assert middleware["spec"]["forwardAuth"]["trustForwardHeader"] is False
    assert middleware["spec"]["forwardAuth"]["address"].startswith("http://auth-check.streamspace.svc")
    assert {(d["kind"], d["metadata"]["name"]) for d in with_traefik} - {(d["kind"], d["metadata"]["name"])
                                                                        for d in base} == {("Middleware",
                                                                                            "streamspace-auth")}
    assert "Middleware" in {d["kind"] for d in helm_template(helm)}
    # Keyed to the sessions' controller, not to the API's GatewayClass.
    assert "Middleware" in {d["kind"] for d in helm_template(helm, "--set", "ingress.className=nginx")}
    assert "Middleware" not in {d["kind"] for d in helm_template(helm, "--set", "config.INGRESS_CONTROLLER=nginx",
                                                                 "--set", "config.INGRESS_CLASS=nginx")}


def _broker_wiring(docs: list[dict[str, Any]]) -> tuple[set[str], set[str], set[str]]:
    """(Broker names, Trigger names, every Broker name a Trigger, source or dead-letter sink refers to)."""
    brokers = set(by_kind(docs, "Broker", "eventing.knative.dev/"))
    triggers = by_kind(docs, "Trigger", "eventing.knative.dev/")
    referred = {t["spec"]["broker"] for t in triggers.values()}
    for doc in docs:
        spec = doc.get("spec") or {}
        for ref in ((spec.get("sink") or {}).get("ref"), ((spec.get("delivery") or {}).get("deadLetterSink") or {})
                    .get("ref")):
            if ref and ref.get("kind") == "Broker":
                referred.add(ref["name"])
    return brokers, set(triggers), referred


def test_the_kafka_broker_applies_over_an_installed_default_broker(kubectl: str, helm: str) -> None:
    """A Broker's class and a Trigger's broker are immutable (Knative's webhooks refuse a change): the Kafka
    overlay and the chart's Kafka class make Brokers and Triggers of their own names and point everything
    at them, so applying them over the default install creates objects instead of changing immutable ones."""
    base_brokers, base_triggers, _ = _broker_wiring(kustomize(kubectl, KNATIVE))
    for docs in (kustomize(kubectl, KNATIVE / "overlays" / "kafka-broker"),
                 helm_template(helm, "--set", "eventing.brokerClass=Kafka")):
        brokers, triggers, referred = _broker_wiring(docs)
        assert brokers == {"streamspace-kafka", "streamspace-dlq-kafka"}
        assert not brokers & base_brokers and not triggers & base_triggers
        assert triggers == {f"{name}-kafka" for name in base_triggers}
        assert referred == brokers  # nothing still sends to, or subscribes at, the default brokers
        for broker in by_kind(docs, "Broker", "eventing.knative.dev/").values():
            assert broker["metadata"]["annotations"]["eventing.knative.dev/broker.class"] == "Kafka"
    overlay = kustomize(kubectl, KNATIVE / "overlays" / "kafka-broker")
    # The label the documented clean-up selects the default install's Brokers and Triggers by.
    assert {d["metadata"]["labels"].get("streamspace.io/broker-class") for d in overlay
            if d["kind"] in ("Broker", "Trigger")} == {"kafka"}


@pytest.mark.parametrize("variant", sorted(HELM_VARIANTS))
def test_helm_template_validates(variant: str, helm: str, tools: Path, tmp_path: Path) -> None:
    docs = helm_template(helm, *HELM_VARIANTS[variant])
    assert validate_all(tools, docs, tmp_path) == []


def test_helm_lint(helm: str) -> None:
    proc = run([helm, "lint", str(KNATIVE / "chart"), "--strict"])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_crds_and_samples_validate() -> None:
    crds = {}
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        for doc in load_docs(path.read_text()):
            assert doc["kind"] == "CustomResourceDefinition", path
            assert validate_kubernetes(doc) is None, (path, validate_kubernetes(doc))
            for version in doc["spec"]["versions"]:
                crds[(doc["spec"]["group"], version["name"], doc["spec"]["names"]["kind"])] = \
                    version["schema"]["openAPIV3Schema"]
    assert crds, "no CRDs in crds/"
    samples = sorted((ROOT / "crds" / "samples").glob("*.yaml"))
    for path in samples:
        for doc in load_docs(path.read_text()):
            group, version = doc["apiVersion"].split("/")
            schema = crds[(group, version, doc["kind"])]
            jsonschema.validate(doc, schema)


def test_broken_manifests_are_rejected(tools: Path, tmp_path: Path, base_docs: list[dict[str, Any]]) -> None:
    services = by_kind(base_docs, "Service", "serving.knative.dev/")
    trigger = next(iter(by_kind(base_docs, "Trigger").values()))
    role = next(iter(by_kind(base_docs, "Role").values()))
    bad_service = copy.deepcopy(services["auth"])
    bad_service["spec"]["template"]["spec"]["containerConcurrency"] = "eight"
    bad_trigger = copy.deepcopy(trigger)
    bad_trigger["spec"]["delivery"]["retry"] = "five"
    bad_role = copy.deepcopy(role)
    bad_role["rules"][0]["verb"] = ["get"]  # typo: unknown field (strict)
    assert validate_all(tools, [bad_service], tmp_path)
    assert validate_all(tools, [bad_trigger], tmp_path)
    assert validate_all(tools, [bad_role], tmp_path)
    ok = validate_models(tools, [services["auth"]], tmp_path)
    assert ok[0]["status"] == "ok"


def test_broken_kustomization_and_chart_fail(kubectl: str, helm: str, tmp_path: Path) -> None:
    work = tmp_path / "knative"
    shutil.copytree(KNATIVE, work, ignore=shutil.ignore_patterns("chart"))
    (work / "eventing" / "kustomization.yaml").write_text(
        (work / "eventing" / "kustomization.yaml").read_text().replace("- brokers.yaml", "- missing.yaml"))
    assert run([kubectl, "kustomize", str(work)]).returncode != 0
    chart = tmp_path / "chart"
    shutil.copytree(KNATIVE / "chart", chart)
    services = chart / "templates" / "services.yaml"
    services.write_text(services.read_text().replace("{{- end }}\n", "", 1))
    assert run([helm, "template", "x", str(chart)]).returncode != 0


# --- content ----------------------------------------------------------------------------------------

def test_service_settings(base_docs: list[dict[str, Any]]) -> None:
    services = by_kind(base_docs, "Service", "serving.knative.dev/")
    values = yaml.safe_load((KNATIVE / "chart" / "values.yaml").read_text())
    for name, fn in values["functions"].items():
        svc = services[name]
        tmpl = svc["spec"]["template"]
        ann = tmpl["metadata"]["annotations"]
        spec = tmpl["spec"]
        container = spec["containers"][0]
        assert container["image"].startswith(f"ghcr.io/streamspace/streamspace-{name}:"), name
        warm = {"auth", "auth-check", "sessions", "portal"}
        assert ann["autoscaling.knative.dev/min-scale"] == ("1" if name in warm else "0")
        assert 1 <= spec["timeoutSeconds"] <= 600 and spec["containerConcurrency"] > 0
        assert {e["name"] for e in container["env"]} >= {"WORKERS", "THREADS", "CLOUD_RUN_TIMEOUT_SECONDS"}
        refs = [next(iter(r.values()))["name"] for r in container["envFrom"]]
        assert refs == ["streamspace-config"]  # the Secret key by key (test_secrets_per_function)
        assert container["readinessProbe"] and container["livenessProbe"]
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert container["securityContext"]["runAsUser"] == 1000
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        labels = svc["metadata"]["labels"]
        # Every function is cluster-local: the public entry is the HTTPRoute only (no public /metrics).
        assert labels.get("networking.knative.dev/visibility") == "cluster-local", name
        if fn["kind"] == "http":
            assert container["readinessProbe"]["httpGet"]["path"] == "/health"
        assert "tcpSocket" in container["livenessProbe"], f"{name}: liveness must not depend on the database"
        assert "periodSeconds" not in container["readinessProbe"], f"{name}: keeps Knative's aggressive probing"
    emitters = {n for n, s in services.items() if s["metadata"]["labels"].get("streamspace.io/emits-events") == "true"}
    # metrics: an admin's retry sends a dead letter back to the broker; users: a deleted user's profile objects
    assert emitters == {"catalog", "webhooks", "sessions", "portal", "metrics", "users"}


def test_eventing_wiring(base_docs: list[dict[str, Any]]) -> None:
    brokers = by_kind(base_docs, "Broker")
    assert set(brokers) == {"streamspace", "streamspace-dlq"}
    sources = by_kind(base_docs, "ApiServerSource")
    watched = {r["kind"] for s in sources.values() for r in s["spec"]["resources"]}
    assert watched == {"Session", "Template", "Deployment", "DaemonSet"}
    # Owned Deployments in the sessions namespace; Sessions and Templates everywhere, so that those outside
    # it are answered (issue 17 item 5), which the adapters' ClusterRole allows (Knative checks get, list
    # and watch in every namespace the source selects).
    for src in sources.values():
        kinds = {r["kind"] for r in src["spec"]["resources"]}
        assert src["spec"]["namespaceSelector"] == ({"matchLabels": {"kubernetes.io/metadata.name":
                                                                      "streamspace-sessions"}}
                                                    if kinds in ({"Deployment"}, {"DaemonSet"}) else {}), \
            src["metadata"]["name"]
    everywhere = _rules(base_docs, "ClusterRole", "streamspace-apiserversource-streamspace")
    assert everywhere == {(g, r, v) for g in ("stream.space", "stream.streamspace.io")
                          for r in ("sessions", "templates") for v in ("get", "list", "watch")}
    assert _rules(base_docs, "Role", "streamspace-apiserversource") == {
        ("apps", kind, v) for kind in ("deployments", "daemonsets") for v in ("get", "list", "watch")}
    for src in sources.values():
        assert src["spec"]["mode"] == "Resource"
        broker = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "streamspace"}
        assert src["spec"]["sink"]["ref"] == broker
        for res in src["spec"]["resources"]:
            if res["kind"] == "Deployment":
                assert res["selector"]["matchLabels"] == {"app.kubernetes.io/managed-by": "streamspace"}
            if res["kind"] == "DaemonSet":  # only the image pullers
                assert res["selector"]["matchLabels"] == {"app.kubernetes.io/managed-by": "streamspace",
                                                          "app.kubernetes.io/name": "streamspace-image-puller"}
    services = by_kind(base_docs, "Service", "serving.knative.dev/")
    triggers = by_kind(base_docs, "Trigger")
    # The dead-letter broker's one Trigger takes everything to the dead-letter function and has no
    # dead-letter sink of its own (a loop otherwise); it retries long enough to outlast a database restart.
    last_stop = triggers.pop("dead-letter")
    assert last_stop["spec"]["broker"] == "streamspace-dlq" and "filters" not in last_stop["spec"]
    assert last_stop["spec"]["subscriber"]["ref"]["name"] == "dead-letter"
    assert "deadLetterSink" not in last_stop["spec"]["delivery"] and last_stop["spec"]["delivery"]["retry"] >= 5
    assert {t["spec"]["broker"] for t in triggers.values()} == {"streamspace"}
    for trig in triggers.values():
        delivery = trig["spec"]["delivery"]
        function = trig["spec"]["subscriber"]["ref"]["name"]
        if function in ("catalog-sync", "resync", "backup"):
            # Long work: never redelivered while it may still run (catalog-sync's budget is 420 s).
            seconds = int(delivery["timeout"].removeprefix("PT").removesuffix("S"))
            assert 420 < seconds <= services[function]["spec"]["template"]["spec"]["timeoutSeconds"]
            assert delivery["retry"] >= 1
        else:
            assert delivery["retry"] >= 3
        assert delivery["backoffPolicy"] == "exponential"
        assert delivery["deadLetterSink"]["ref"]["name"] == "streamspace-dlq"
        assert delivery["timeout"] and delivery["backoffDelay"]
    binding = next(iter(by_kind(base_docs, "SinkBinding").values()))
    assert binding["spec"]["subject"]["kind"] == "Service"
    assert set(by_kind(base_docs, "PingSource")) == {"idle-sweep", "resync", "warm-schedule", "catalog-sync", "backup"}
    job = by_kind(base_docs, "Job")["streamspace-migrate"]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["python", "-m", "streamspace", "migrate",
                                                                          "--bootstrap"]


def _rules(docs: list[dict[str, Any]], kind: str, name: str) -> set[tuple[str, str, str]]:
    role = by_kind(docs, kind)[name]
    return {(g, r, v) for rule in role["rules"]
            for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def test_rbac_least_privilege(base_docs: list[dict[str, Any]]) -> None:
    """One ServiceAccount per function; no wildcard, no escalation, no Secrets, no PVC deletion. That each
    function has every verb it uses is proven by running it against these Roles (test_rbac_enforced)."""
    accounts = {s["metadata"]["name"]: s["spec"]["template"]["spec"]["serviceAccountName"]
                for s in by_kind(base_docs, "Service", "serving.knative.dev/").values()}
    assert accounts == {fn: f"streamspace-{fn}" for fn in functions_on_disk()}
    # Every ServiceAccount a pod or source names exists (a missing one stops the pod from being created).
    named = set(accounts.values()) | {j["spec"]["template"]["spec"]["serviceAccountName"]
                                      for j in by_kind(base_docs, "Job").values()}
    named |= {s["spec"]["serviceAccountName"] for s in by_kind(base_docs, "ApiServerSource").values()}
    assert named <= set(by_kind(base_docs, "ServiceAccount"))
    granted: set[tuple[str, str, str]] = set()
    for kind in ("Role", "ClusterRole"):
        for name in by_kind(base_docs, kind):
            granted |= _rules(base_docs, kind, name)
    assert not any(v in ("*", "escalate", "bind", "impersonate") or r == "*" or g == "*" for g, r, v in granted)
    # Secrets: only the functions that reconcile Sessions (reconcile-session.yaml), and only to write their
    # profile agents' tokens (HOME_STORAGE=s3), never to read one.
    reconcilers = {"streamspace-session-reconcile", "streamspace-template-reconcile", "streamspace-resync"}
    for kind in ("Role", "ClusterRole"):
        for name in by_kind(base_docs, kind):
            verbs = {v for _, r, v in _rules(base_docs, kind, name) if r == "secrets"}
            assert not verbs or (name in reconcilers and verbs <= {"create", "patch", "delete"}), (name, verbs)
    assert not any(r == "persistentvolumeclaims" and v in ("delete", "deletecollection") for _, r, v in granted)
    session_reconcile = _rules(base_docs, "Role", "streamspace-session-reconcile")
    assert ("stream.space", "sessions/finalizers", "update") in session_reconcile
    assert ("", "persistentvolumeclaims", "list") in _rules(base_docs, "Role", "streamspace-resync")
    assert _rules(base_docs, "Role", "streamspace-catalog") == {("stream.space", "templates", "create"),
                                                                ("stream.space", "templates", "patch")}
    cluster = _rules(base_docs, "ClusterRole", "streamspace-cluster-streamspace")
    assert cluster == {("", "nodes", "get"), ("", "nodes", "list"), ("", "nodes", "patch"),
                       ("", "pods", "get"), ("", "pods", "list"), ("", "pods/log", "get"),
                       ("", "pods/eviction", "create"), ("", "services", "list"), ("", "namespaces", "list"),
                       ("apps", "deployments", "list")}
    # metrics counts nodes for its cluster block, and may do nothing else.
    assert _rules(base_docs, "ClusterRole", "streamspace-metrics-streamspace") == {("", "nodes", "list")}
    src = _rules(base_docs, "Role", "streamspace-apiserversource")
    assert {v for g, r, v in src if r != "events"} == {"get", "list", "watch"}
    # No cluster calls, no token: a compromised pod of these holds no Kubernetes credential.
    tokenless = {name for name, sa in by_kind(base_docs, "ServiceAccount").items()
                 if sa.get("automountServiceAccountToken") is False}
    assert {f"streamspace-{fn}" for fn in ("auth", "auth-check", "users", "config", "webhooks",
                                          "catalog-sync", "dead-letter")} <= tokenless
    bound = {s["name"] for kind in ("RoleBinding", "ClusterRoleBinding")
             for b in by_kind(base_docs, kind).values() for s in b["subjects"]}
    assert not tokenless & bound


def _strip_helm(doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["metadata"].pop("namespace", None)
    for key in ("app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "helm.sh/chart"):
        doc["metadata"].get("labels", {}).pop(key, None)
    return doc


def test_kustomize_and_chart_agree(base_docs: list[dict[str, Any]], chart_docs: list[dict[str, Any]]) -> None:
    # Services and RBAC: the kustomize files are generated from the chart.
    proc = run([sys.executable, str(ROOT / "tools" / "gen_knative.py"), "--check"])
    assert proc.returncode == 0, "knative/serving or knative/rbac is stale: run `make knative-generate`\n" + proc.stderr
    for kind in ("Service", "Trigger", "PingSource", "ApiServerSource", "SinkBinding", "Broker"):
        prefix = "serving.knative.dev/" if kind == "Service" else ""
        base, chart = by_kind(base_docs, kind, prefix), by_kind(chart_docs, kind, prefix)
        assert set(base) == set(chart), kind
        for name in base:
            assert base[name].get("spec") == _strip_helm(chart[name]).get("spec"), f"{kind}/{name}"
    route_base = by_kind(base_docs, "HTTPRoute")["streamspace-api"]["spec"]["rules"]
    route_chart = by_kind(chart_docs, "HTTPRoute")["streamspace-api"]["spec"]["rules"]
    assert route_base == route_chart


def test_chart_values_follow_the_guide(helm: str) -> None:
    values = yaml.safe_load((KNATIVE / "chart" / "values.yaml").read_text())
    for group in ("controller", "api"):
        assert set(values[group]["image"]) >= {"repository", "tag"}
        assert "replicas" in values[group] and set(values[group]["resources"]) == {"requests", "limits"}
    assert set(values["postgresql"]) >= {"enabled", "auth", "persistence"}
    assert set(values["ingress"]) >= {"enabled", "className", "hosts"}
    docs = helm_template(helm, "--set", "controller.image.tag=v9.9.9", "--set", "api.image.tag=v8.8.8",
                         "--set", "api.replicas=2", "--set", "functions.users.image.repository=r.example/users")
    services = by_kind(docs, "Service", "serving.knative.dev/")
    image = {n: s["spec"]["template"]["spec"]["containers"][0]["image"] for n, s in services.items()}
    assert image["session-reconcile"] == "ghcr.io/streamspace/streamspace-session-reconcile:v9.9.9"
    assert image["auth"] == "ghcr.io/streamspace/streamspace-auth:v8.8.8"
    assert image["users"] == "r.example/users:v8.8.8"
    scale = {n: s["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"]
             for n, s in services.items()}
    assert scale["config"] == "2" and scale["idle-sweep"] == "0"
    pg = helm_template(helm, "--set", "postgresql.enabled=false")
    assert "StatefulSet" not in {d["kind"] for d in pg}


def test_function_table_matches_folders() -> None:
    values = yaml.safe_load((KNATIVE / "chart" / "values.yaml").read_text())
    for name, kind in functions_on_disk().items():
        assert name in values["functions"], f"functions/{name} has no entry in knative/chart/values.yaml"
        assert values["functions"][name]["kind"] == kind, name


def test_dashboard_and_prometheus_config() -> None:
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "streamspace-api")
    assert job["metrics_path"] == "/metrics" and job["static_configs"][0]["targets"] == ["api:8000"]
    ds = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = ds["datasources"][0]["uid"]
    dash = json.loads((ROOT / "deploy/grafana/dashboards/streamspace.json").read_text())
    assert dash["panels"] and all(p["datasource"]["uid"] == uid for p in dash["panels"])
