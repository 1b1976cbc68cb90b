"""Which ServiceAccount each function runs as, read from the deployment manifests.

In a cluster every function is its own pod and calls the API with its ServiceAccount's token. `make
run` and the tests run all functions in one process against the simulated API server; there the
simulated server loads the project's own ServiceAccounts, Roles and bindings and issues each
function's ServiceAccount a token, so every function is authorized exactly as in production.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from streamspace.kube import function_context

ROOT = Path(__file__).resolve().parents[3]
KNATIVE = ROOT / "knative"


def knative_documents(namespace: str = "streamspace", sessions_namespace: str | None = None) -> list[dict[str, Any]]:
    """The Knative Services and the RBAC of the kustomize tree (knative/serving, knative/rbac, knative/sessions)
    with their namespace set as kustomize sets it; the plain files, so `make run` needs no kubectl.

    The Roles of knative/sessions are granted in `sessions_namespace` when given (as the chart renders them
    for `sessions.namespace`, e.g. the control plane's own namespace), else in the one they name."""
    docs: list[dict[str, Any]] = []
    for path in [*sorted((KNATIVE / "serving").glob("*.yaml")), KNATIVE / "rbac" / "rbac.yaml"]:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict) and doc.get("kind") not in (None, "Kustomization"):
                doc.setdefault("metadata", {})
                if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
                    doc["metadata"].setdefault("namespace", namespace)
                docs.append(doc)
    for doc in yaml.safe_load_all((KNATIVE / "sessions" / "rbac.yaml").read_text(encoding="utf-8")):
        if isinstance(doc, dict):
            if sessions_namespace:
                doc["metadata"]["namespace"] = sessions_namespace
            docs.append(doc)
    return docs


def deployed_setting(name: str) -> str | None:
    """A setting as the kustomize tree deploys it (knative/serving/streamspace-config.configmap.yaml)."""
    config = yaml.safe_load((KNATIVE / "serving" / "streamspace-config.configmap.yaml").read_text(encoding="utf-8"))
    value = (config.get("data") or {}).get(name)
    return None if value is None else str(value)


def function_accounts(docs: Iterable[Mapping[str, Any]], namespace: str) -> dict[str, tuple[str, str] | None]:
    """{function: (namespace, ServiceAccount)} of every Knative Service among `docs`; None where the pod
    gets no token (automountServiceAccountToken false on the pod or on its ServiceAccount)."""
    docs = list(docs)
    no_token = {str(d["metadata"]["name"]) for d in docs
                if d.get("kind") == "ServiceAccount" and d.get("automountServiceAccountToken") is False}
    accounts: dict[str, tuple[str, str] | None] = {}
    for doc in docs:
        if doc.get("kind") != "Service" or not str(doc.get("apiVersion", "")).startswith("serving.knative.dev/"):
            continue
        pod = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
        account = str(pod.get("serviceAccountName") or "default")
        automount = pod.get("automountServiceAccountToken")
        mounted = automount is True or (automount is None and account not in no_token)
        accounts[str(doc["metadata"]["name"])] = (doc["metadata"].get("namespace") or namespace, account) \
            if mounted else None
    return accounts


# The local relay's watches stand in for the ApiServerSource adapters, and act as their ServiceAccount.
SOURCE_IDENTITY = "apiserversource"


def source_account(namespace: str) -> tuple[str, str]:
    """(namespace, ServiceAccount) of the ApiServerSources (knative/eventing/apiserversources.yaml)."""
    accounts = {str(doc["spec"]["serviceAccountName"])
                for doc in yaml.safe_load_all((KNATIVE / "eventing" / "apiserversources.yaml").read_text("utf-8"))
                if isinstance(doc, dict) and doc.get("kind") == "ApiServerSource"}
    if len(accounts) != 1:
        raise ValueError(f"the ApiServerSources name {len(accounts)} ServiceAccounts; the relay acts as one")
    return namespace, accounts.pop()


def kubeconfig_identities(docs: Iterable[Mapping[str, Any]], namespace: str) -> dict[str, tuple[str, str] | None]:
    """The per-function kubeconfig contexts (kube.function_context) for SimCluster.write_kubeconfig, and the
    ApiServerSources' for the relay's watches."""
    identities: dict[str, tuple[str, str] | None] = {
        function_context(fn): account for fn, account in function_accounts(docs, namespace).items()}
    identities[function_context(SOURCE_IDENTITY)] = source_account(namespace)
    return identities


def serve_as_functions(sim: Any, kubeconfig: str | Path, docs: Iterable[Mapping[str, Any]] | None = None,
                       namespace: str = "streamspace", sessions_namespace: str | None = None) -> str:
    """Load the manifests' RBAC (by default the kustomize tree's, its sessions Roles granted in
    `sessions_namespace` when given) into the simulated cluster `sim` and write a kubeconfig whose
    per-function contexts carry each function's ServiceAccount token; returns its path."""
    rendered = list(docs) if docs is not None else knative_documents(namespace, sessions_namespace)
    sim.load_rbac(rendered, namespace)
    return str(sim.write_kubeconfig(kubeconfig, namespace, kubeconfig_identities(rendered, namespace)))
