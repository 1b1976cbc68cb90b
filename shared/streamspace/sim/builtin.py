"""Defaulting and the validation rules of built-in kinds that callers most often trip over.

Only a subset of the API server's rules, chosen so code that passes here is not refused by a real
cluster for the usual reasons: bad names and labels, selector/template mismatch, missing images, port
ranges and names, volume mounts without a volume, the ingress class annotation next to the class field.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from typing import Any

from .resources import ResourceType

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAMED = {"namespaces", "services"}  # kinds whose names must be DNS-1123 labels, not subdomains
_ip_counter = itertools.count(1)


def _dns_label_errors(field: str, value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(f'{field}: Invalid value: "{value}": must be no more than 63 characters')
    if not _DNS_LABEL.match(value):
        errs.append(f'{field}: Invalid value: "{value}": a lowercase RFC 1123 label must consist of lower case '
                    "alphanumeric characters or '-', and must start and end with an alphanumeric character")
    return errs


def name_errors(rt: ResourceType, name: str) -> list[str]:
    if rt.plural in _LABEL_NAMED and not rt.group:
        return _dns_label_errors("metadata.name", name)
    errs = []
    if len(name) > 253:
        errs.append(f'metadata.name: Invalid value: "{name}": must be no more than 253 characters')
    if not _DNS_SUBDOMAIN.match(name):
        errs.append(f'metadata.name: Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower '
                    "case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")
    return errs


def _key_errors(field: str, key: str) -> list[str]:
    prefix, _, name = key.rpartition("/")
    errs = []
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        errs.append(f'{field}: Invalid value: "{key}": prefix part must be a lowercase RFC 1123 subdomain')
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        errs.append(f'{field}: Invalid value: "{key}": name part must consist of alphanumeric characters, \'-\', '
                    "'_' or '.', and must start and end with an alphanumeric character (max 63 characters)")
    return errs


def label_errors(field: str, labels: Any) -> list[str]:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [f"{field}: Invalid value: must be a map of strings"]
    errs: list[str] = []
    for key, value in labels.items():
        errs += _key_errors(field, key)
        if not isinstance(value, str):
            errs.append(f"{field}: Invalid value: {value!r}: label values must be strings")
        elif len(value) > 63 or not _LABEL_VALUE.match(value):
            errs.append(f'{field}: Invalid value: "{value}": a valid label must be an empty string or consist of '
                        "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
                        "character (max 63 characters)")
    return errs


def metadata_errors(rt: ResourceType, meta: dict[str, Any], *, check_name: bool) -> list[str]:
    errs: list[str] = []
    if check_name:
        errs += name_errors(rt, str(meta.get("name", "")))
    errs += label_errors("metadata.labels", meta.get("labels"))
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        for key, value in annotations.items():
            errs += _key_errors("metadata.annotations", key)
            if not isinstance(value, str):
                errs.append(f"metadata.annotations: Invalid value: {value!r}: annotation values must be strings")
    return errs


# ---------------------------------------------------------------- defaults

def _default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if not isinstance(c, dict):
            continue
        image = str(c.get("image", ""))
        tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
        c.setdefault("imagePullPolicy", "IfNotPresent" if tagged and not image.endswith(":latest") else "Always")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        for p in c.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")


def _default_daemonset(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """SetDefaults_DaemonSet, and the registry strategy's template generation (pkg/registry/apps/daemonset:
    1 on create, one more whenever the pod template changes, mirrored in the deprecated annotation)."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("minReadySeconds", 0)
    strategy = spec.setdefault("updateStrategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", 1)
        rolling.setdefault("maxSurge", 0)
    template = spec.setdefault("template", {})
    if isinstance(template.get("spec"), dict):
        _default_pod_spec(template["spec"])
    # apps/v1 has no spec.templateGeneration: the internal field travels in this annotation.
    key = "deprecated.daemonset.template.generation"
    generation = 1
    if old is not None:
        previous = str(((old.get("metadata") or {}).get("annotations") or {}).get(key) or "1")
        changed = ((old.get("spec") or {}).get("template") != template)
        generation = (int(previous) if previous.isdigit() else 1) + (1 if changed else 0)
    obj.setdefault("metadata", {}).setdefault("annotations", {})[key] = str(generation)


def apply_defaults(rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None = None) -> None:
    if rt.group == "" and rt.plural == "pods":
        _default_pod_spec(obj.setdefault("spec", {}))
    elif rt.group == "apps" and rt.plural == "deployments":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {"maxUnavailable": "25%", "maxSurge": "25%"})
        template = spec.setdefault("template", {})
        if isinstance(template.get("spec"), dict):
            _default_pod_spec(template["spec"])
    elif rt.group == "apps" and rt.plural == "daemonsets":
        _default_daemonset(obj, old)
    elif rt.group == "apps" and rt.plural == "replicasets":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        template = spec.setdefault("template", {})
        if isinstance(template.get("spec"), dict):
            _default_pod_spec(template["spec"])
    elif rt.group == "" and rt.plural == "services":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        old_spec = (old or {}).get("spec") or {}
        # An update that omits the allocated IP keeps it (the API server patches allocated values back in).
        if not spec.get("clusterIP") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
            spec["clusterIPs"] = old_spec.get("clusterIPs", [old_spec["clusterIP"]])
        if spec.get("type") != "ExternalName" and not spec.get("clusterIP"):
            n = next(_ip_counter)
            spec["clusterIP"] = str(ipaddress.ip_address("10.96.0.0") + 10 + n)
        if spec.get("clusterIP"):
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
        for p in spec.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
                if "port" in p:
                    p.setdefault("targetPort", p["port"])
    elif rt.group == "" and rt.plural == "namespaces":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
        obj.setdefault("metadata", {}).setdefault("labels", {})["kubernetes.io/metadata.name"] = \
            obj["metadata"]["name"]
    elif rt.group == "" and rt.plural == "persistentvolumeclaims":
        spec = obj.setdefault("spec", {})
        spec.setdefault("volumeMode", "Filesystem")
    elif rt.group == "" and rt.plural == "persistentvolumes":
        spec = obj.setdefault("spec", {})
        spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
        spec.setdefault("volumeMode", "Filesystem")


def initial_status(rt: ResourceType, obj: dict[str, Any]) -> None:
    """Status the API server (and fast controllers) give a freshly created object."""
    if rt.is_crd:
        obj.pop("status", None)
    elif rt.group == "" and rt.plural == "pods":
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    elif rt.group == "" and rt.plural == "persistentvolumeclaims":
        obj["status"] = {"phase": "Pending"}  # until the volume controller binds it (volumes.py)
    elif rt.group == "" and rt.plural == "persistentvolumes":
        obj["status"] = {"phase": "Pending"}
    elif rt.group == "apps" and rt.plural == "daemonsets":
        # DaemonSetStatus's four counts have no omitempty: an empty status serialises them as 0.
        obj["status"] = {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                         "numberReady": 0}
    elif rt.group == "" and rt.plural == "services":
        obj["status"] = {"loadBalancer": {}}
    elif rt.group == "apps" and rt.plural == "replicasets":
        obj["status"] = {"replicas": 0}  # ReplicaSetStatus.replicas is not omitempty
    elif rt.group == "" and rt.plural == "namespaces":
        obj["status"] = {"phase": "Active"}
    elif rt.has_status and rt.plural != "customresourcedefinitions":
        obj["status"] = {}


# ---------------------------------------------------------------- validation

def _pod_spec_errors(spec: Any, path: str) -> list[str]:
    if not isinstance(spec, dict):
        return [f"{path}: Required value"]
    errs: list[str] = []
    containers = spec.get("containers")
    if not containers:
        errs.append(f"{path}.containers: Required value")
        containers = []
    volumes = {v.get("name") for v in spec.get("volumes") or [] if isinstance(v, dict)}
    for i, v in enumerate(spec.get("volumes") or []):
        if isinstance(v, dict):
            errs += _dns_label_errors(f"{path}.volumes[{i}].name", str(v.get("name", "")))
    for group in ("containers", "initContainers"):
        names: set[str] = set()
        for i, c in enumerate(spec.get(group) or []):
            cp = f"{path}.{group}[{i}]"
            if not isinstance(c, dict):
                errs.append(f"{cp}: Invalid value: must be an object")
                continue
            name = c.get("name")
            if not name:
                errs.append(f"{cp}.name: Required value")
            else:
                errs += _dns_label_errors(f"{cp}.name", str(name))
                if name in names:
                    errs.append(f'{cp}.name: Duplicate value: "{name}"')
                names.add(name)
            if not c.get("image"):
                errs.append(f"{cp}.image: Required value")
            for j, p in enumerate(c.get("ports") or []):
                pp = f"{cp}.ports[{j}]"
                port = p.get("containerPort") if isinstance(p, dict) else None
                if not isinstance(port, int) or not 1 <= port <= 65535:
                    errs.append(f"{pp}.containerPort: Invalid value: {port!r}: must be between 1 and 65535, "
                                "inclusive")
                pname = p.get("name") if isinstance(p, dict) else None
                if pname is not None and (len(str(pname)) > 15 or not _PORT_NAME.match(str(pname))
                                          or not re.search("[a-z]", str(pname))):
                    errs.append(f'{pp}.name: Invalid value: "{pname}": must be no more than 15 characters, '
                                "lower case alphanumeric or '-', and contain at least one letter")
            for j, m in enumerate(c.get("volumeMounts") or []):
                if isinstance(m, dict):
                    if m.get("name") not in volumes:
                        errs.append(f'{cp}.volumeMounts[{j}].name: Not found: "{m.get("name")}"')
                    if not m.get("mountPath"):
                        errs.append(f"{cp}.volumeMounts[{j}].mountPath: Required value")
    return errs


def selector_matches(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    """Whether a LabelSelector (matchLabels and matchExpressions) selects these labels."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _selector_template_errors(spec: Any, old: dict[str, Any] | None) -> list[str]:
    """A workload's selector (required, matching its template, immutable) and its pod template."""
    spec = spec if isinstance(spec, dict) else {}
    errs: list[str] = []
    selector = spec.get("selector")
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not selector:
        errs.append("spec.selector: Required value")
    elif not selector_matches(selector, labels):
        errs.append(f"spec.template.metadata.labels: Invalid value: {labels!r}: `selector` does not match "
                    "template `labels`")
    errs += label_errors("spec.template.metadata.labels", labels)
    errs += _pod_spec_errors(template.get("spec"), "spec.template.spec")
    if old is not None and selector and (old.get("spec") or {}).get("selector") != selector:
        errs.append(f"spec.selector: Invalid value: {selector!r}: field is immutable")
    return errs


def validate(rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> list[str]:
    errs: list[str] = []
    spec = obj.get("spec")
    if rt.group == "" and rt.plural == "pods":
        errs += _pod_spec_errors(spec, "spec")
    elif rt.group == "apps" and rt.plural in ("deployments", "replicasets"):
        spec = spec if isinstance(spec, dict) else {}
        errs += _selector_template_errors(spec, old)
        replicas = spec.get("replicas")
        if isinstance(replicas, int) and replicas < 0:
            errs.append(f"spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0")
    elif rt.group == "apps" and rt.plural == "daemonsets":
        errs += _selector_template_errors(spec, old)
    elif rt.group == "" and rt.plural == "services":
        spec = spec if isinstance(spec, dict) else {}
        for i, p in enumerate(spec.get("ports") or []):
            port = p.get("port") if isinstance(p, dict) else None
            if not isinstance(port, int) or not 1 <= port <= 65535:
                errs.append(f"spec.ports[{i}].port: Invalid value: {port!r}: must be between 1 and 65535, inclusive")
        if not spec.get("ports") and spec.get("type", "ClusterIP") != "ExternalName" \
                and spec.get("clusterIP") != "None":
            errs.append("spec.ports: Required value")
        if old is not None:
            old_ip = (old.get("spec") or {}).get("clusterIP")
            if old_ip and spec.get("clusterIP") and spec.get("clusterIP") != old_ip:
                errs.append(f'spec.clusterIP: Invalid value: "{spec.get("clusterIP")}": field is immutable')
    elif rt.group == "networking.k8s.io" and rt.plural == "ingresses":
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        cls = annotations.get("kubernetes.io/ingress.class")
        if cls is not None and isinstance(spec, dict) and spec.get("ingressClassName"):
            errs.append(f'annotations.kubernetes.io/ingress.class: Invalid value: "{cls}": can not be set when the '
                        "class field is also set")
    elif rt.group == "" and rt.plural == "persistentvolumeclaims":
        spec = spec if isinstance(spec, dict) else {}
        if not spec.get("accessModes"):
            errs.append("spec.accessModes: Required value")
        if not ((spec.get("resources") or {}).get("requests") or {}).get("storage"):
            errs.append("spec.resources[storage]: Required value")
        if old is not None:
            old_spec = dict(old.get("spec") or {})
            new_spec = dict(spec)
            for s in (old_spec, new_spec):
                s.pop("resources", None)
            if not old_spec.get("volumeName"):
                new_spec.pop("volumeName", None)  # the binder sets it once
            if old_spec != new_spec:
                errs.append("spec: Forbidden: spec is immutable after creation except resources.requests")
    return errs
