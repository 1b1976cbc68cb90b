"""The cluster's store is the Kubernetes API server: the only code of the package that calls it.
Names reach here validated (the service checks them first), so nothing odd is put in a path."""

from __future__ import annotations

from typing import Any

from streamspace import kube


def _all_namespaces_path(kind: str) -> str:
    known = kube.KINDS[kind]
    return kube.Kind(known.api_version, known.plural, namespaced=False).path(None)


def list_items(kind: str, namespace: str | None, *, field_selector: str | None = None) -> list[dict[str, Any]]:
    """Objects of `kind` in one namespace, or in all when `namespace` is None (or the kind is cluster-scoped)."""
    known = kube.KINDS[kind]
    path = known.path(namespace) if (namespace is not None or not known.namespaced) else _all_namespaces_path(kind)
    result = kube.request("GET", path, query={"fieldSelector": field_selector})
    items: list[dict[str, Any]] = result.get("items") or []
    return items


def read_node(name: str) -> dict[str, Any] | None:
    return kube.get("Node", name)


def patch_node(name: str, patch: dict[str, Any]) -> dict[str, Any]:
    return kube.merge_patch("Node", name, patch)


def evict(namespace: str, name: str, grace: int | None) -> None:
    """Through the Eviction API, so PodDisruptionBudgets are honoured (a refusal answers 429)."""
    eviction: dict[str, Any] = {"apiVersion": "policy/v1", "kind": "Eviction",
                                "metadata": {"name": name, "namespace": namespace}}
    if grace is not None:
        eviction["deleteOptions"] = {"gracePeriodSeconds": grace}
    kube.request("POST", kube.KINDS["Pod"].path(namespace, name, "eviction"), body=eviction)


def container_log(namespace: str, name: str, container: str | None, tail_lines: int, limit_bytes: int) -> str:
    return kube.request_text("GET", kube.KINDS["Pod"].path(namespace, name, "log"),
                             query={"container": container, "tailLines": tail_lines, "limitBytes": limit_bytes})
