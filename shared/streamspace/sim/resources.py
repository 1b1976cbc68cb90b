"""Resource types the simulated API server knows: built-ins plus registered CRDs, and discovery documents."""

from __future__ import annotations

import copy
import threading
from dataclasses import field
from typing import Any

from streamspace.records import record

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
CRD_GROUP = "apiextensions.k8s.io"


@record
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    has_status: bool = False
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    printer_columns: tuple[dict[str, Any], ...] = field(default=(), compare=False, hash=False)
    is_crd: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """The name the API server uses in messages: `pods`, `deployments.apps`, `sessions.stream.space`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_generation(self) -> bool:
        """Only kinds whose registry strategy sets metadata.generation have one (PrepareForCreate's
        `Generation = 1` in pkg/registry/apps/deployment, networking/ingress, networkpolicy, ingressclass,
        policy/poddisruptionbudget, apiextensions; custom resources always): not ConfigMaps, Services,
        Pods (before 1.33's pod generation), PVCs, Namespaces, Nodes, RBAC or Events."""
        return self.is_crd or self.store_key in GENERATION_KINDS

    @property
    def store_key(self) -> tuple[str, str]:
        # Objects are shared across versions of one group/resource (no conversion is simulated).
        return (self.group, self.plural)


GENERATION_KINDS = frozenset({
    ("apps", "deployments"), ("apps", "replicasets"), ("apps", "daemonsets"),
    ("networking.k8s.io", "ingresses"),
    ("networking.k8s.io", "networkpolicies"),
    ("networking.k8s.io", "ingressclasses"), ("policy", "poddisruptionbudgets"),
    (CRD_GROUP, "customresourcedefinitions"),
})


def _b(group: str, version: str, plural: str, kind: str, namespaced: bool = True, short: tuple[str, ...] = (),
       status: bool = False) -> ResourceType:
    return ResourceType(group, version, plural, kind, namespaced, singular=kind.lower(), short_names=short,
                        has_status=status)


BUILTINS: tuple[ResourceType, ...] = (
    _b("", "v1", "namespaces", "Namespace", namespaced=False, short=("ns",), status=True),
    _b("", "v1", "pods", "Pod", short=("po",), status=True),
    _b("", "v1", "services", "Service", short=("svc",), status=True),
    _b("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short=("pvc",), status=True),
    _b("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False, short=("pv",), status=True),
    _b("storage.k8s.io", "v1", "storageclasses", "StorageClass", namespaced=False, short=("sc",)),
    _b("", "v1", "events", "Event", short=("ev",)),
    _b("", "v1", "nodes", "Node", namespaced=False, short=("no",), status=True),
    _b("", "v1", "secrets", "Secret"),
    _b("", "v1", "configmaps", "ConfigMap", short=("cm",)),
    _b("", "v1", "serviceaccounts", "ServiceAccount", short=("sa",)),
    _b("", "v1", "endpoints", "Endpoints", short=("ep",)),
    _b("apps", "v1", "deployments", "Deployment", short=("deploy",), status=True),
    _b("apps", "v1", "daemonsets", "DaemonSet", short=("ds",), status=True),
    _b("apps", "v1", "replicasets", "ReplicaSet", short=("rs",), status=True),
    _b("networking.k8s.io", "v1", "ingresses", "Ingress", short=("ing",), status=True),
    _b("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short=("netpol",)),
    _b("networking.k8s.io", "v1", "ingressclasses", "IngressClass", namespaced=False),
    _b("events.k8s.io", "v1", "events", "Event", short=("ev",)),
    _b("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    _b("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    _b("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    _b("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
    _b("coordination.k8s.io", "v1", "leases", "Lease"),
    _b("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short=("pdb",), status=True),
    _b(CRD_GROUP, "v1", "customresourcedefinitions", "CustomResourceDefinition", namespaced=False,
       short=("crd", "crds"), status=True),
)


class CrdError(ValueError):
    pass


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group")
    plural = names.get("plural")
    kind = names.get("kind")
    if not group or not plural or not kind:
        raise CrdError("spec.group, spec.names.plural and spec.names.kind are required")
    expected = f"{plural}.{group}"
    name = (crd.get("metadata") or {}).get("name")
    if name and name != expected:
        raise CrdError(f'metadata.name: Invalid value: "{name}": must be spec.names.plural+"."+spec.group')
    scope = spec.get("scope", "Namespaced")
    out = []
    for ver in spec.get("versions") or []:
        if not ver.get("served", True):
            continue
        schema = ((ver.get("schema") or {}).get("openAPIV3Schema")) or None
        out.append(ResourceType(
            group=group, version=ver["name"], plural=plural, kind=kind, namespaced=(scope == "Namespaced"),
            singular=names.get("singular") or kind.lower(), short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()),
            has_status="status" in (ver.get("subresources") or {}),
            schema=copy.deepcopy(schema), printer_columns=tuple(ver.get("additionalPrinterColumns") or ()),
            is_crd=True,
        ))
    if not out:
        raise CrdError("spec.versions: Required value: must have at least one served version")
    return out


class Registry:
    """Thread-safe map of (group, version, plural) -> ResourceType, with discovery documents."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._crd_types: dict[str, list[ResourceType]] = {}
        for rt in BUILTINS:
            self._types[(rt.group, rt.version, rt.plural)] = rt

    def register_crd(self, crd: dict[str, Any]) -> list[ResourceType]:
        types = types_from_crd(crd)
        name = f"{types[0].plural}.{types[0].group}"
        with self._lock:
            for old in self._crd_types.pop(name, []):
                self._types.pop((old.group, old.version, old.plural), None)
            for rt in types:
                self._types[(rt.group, rt.version, rt.plural)] = rt
            self._crd_types[name] = types
        return types

    def unregister_crd(self, name: str) -> list[ResourceType]:
        with self._lock:
            types = self._crd_types.pop(name, [])
            for rt in types:
                self._types.pop((rt.group, rt.version, rt.plural), None)
        return types

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        with self._lock:
            return self._types.get((group, version, plural))

    def all(self) -> list[ResourceType]:
        with self._lock:
            return list(self._types.values())

    def for_store_key(self, key: tuple[str, str]) -> ResourceType | None:
        with self._lock:
            for rt in self._types.values():
                if rt.store_key == key:
                    return rt
        return None

    def group_versions(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for rt in self.all():
            versions = out.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return out

    def resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        types = [rt for rt in self.all() if rt.group == group and rt.version == version]
        if not types:
            return None
        resources: list[dict[str, Any]] = []
        for rt in sorted(types, key=lambda t: t.plural):
            entry: dict[str, Any] = {
                "name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced, "kind": rt.kind,
                "verbs": ALL_VERBS,
            }
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            if rt.categories:
                entry["categories"] = list(rt.categories)
            resources.append(entry)
            if rt.has_status:
                resources.append({"name": f"{rt.plural}/status", "singularName": "", "namespaced": rt.namespaced,
                                  "kind": rt.kind, "verbs": ["get", "patch", "update"]})
            if rt.plural == "pods" and not rt.group:
                resources.append({"name": "pods/eviction", "singularName": "", "namespaced": True,
                                  "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]})
                resources.append({"name": "pods/binding", "singularName": "", "namespaced": True, "kind": "Binding",
                                  "verbs": ["create"]})
                resources.append({"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod",
                                  "verbs": ["get"]})
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else
                version, "resources": resources}

    def group_doc(self, group: str) -> dict[str, Any] | None:
        versions = self.group_versions().get(group)
        if not versions:
            return None
        vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": vs, "preferredVersion": vs[0]}

    def groups_doc(self) -> dict[str, Any]:
        groups = []
        for group in sorted(g for g in self.group_versions() if g):
            doc = self.group_doc(group)
            if doc is None:
                raise RuntimeError("invariant broken: doc is None")
            doc.pop("kind")
            doc.pop("apiVersion")
            groups.append(doc)
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_root(registry: Registry) -> dict[str, Any]:
    """Just enough OpenAPI v3 for kubectl to see that the server validates fields itself (fieldValidation)."""
    paths = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            gv = _gv_path(group, version)
            paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash=sim"}
    return {"paths": paths}


def openapi_v3_group_version(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = [rt for rt in registry.all() if rt.group == group and rt.version == version]
    if not types:
        return None
    params = [{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
              {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True}}]
    paths: dict[str, Any] = {}
    for rt in types:
        base = f"/{_gv_path(group, version)}/" + ("namespaces/{namespace}/" if rt.namespaced else "")
        gvk = {"group": group, "version": version, "kind": rt.kind}
        op = {"x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": {"200": {}}}
        paths[f"{base}{rt.plural}/{{name}}"] = {"get": dict(op), "put": dict(op), "patch": dict(op),
                                                 "delete": dict(op)}
        paths[f"{base}{rt.plural}"] = {"post": dict(op), "get": dict(op)}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes (SIMULATED)", "version": "v1.31.0"},
            "paths": paths, "components": {"schemas": {}}}
