"""Cluster administration (admin only): nodes and read-only views of the cluster's workloads.

Nodes: list with the figures an admin needs (status, roles, capacity, what the scheduled pods request),
totals, labels, taints, cordon/uncordon, and drain through the Eviction API (so PodDisruptionBudgets are
honoured), skipping DaemonSet and mirror pods as `kubectl drain --ignore-daemonsets` does. Usage is the sum
of the requests of the pods bound to a node, which needs no metrics-server.

Views: pods, deployments, services and namespaces summarised for the UI, and one container's log as text.

Every Kubernetes call goes through `cluster.store`; a Kubernetes error is a domain error that the HTTP
layer maps (404, 409, 400, 503). Names that reach an API path are validated first, so nothing odd is
ever put in a path. Every change writes an audit row in the same database transaction that is open
while the change is made: a change that fails leaves no row, and with the database down no change
is made.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from streamspace import audit
from streamspace.cluster import store
from streamspace.config import environment
from streamspace.db import transaction
from streamspace.domain.errors import Invalid, NotFound, ValidationError
from streamspace.domain.quantity import format_cpu, format_memory
from streamspace.kube import ClusterUnavailable, KubeError

if TYPE_CHECKING:
    from streamspace.auth.principal import Principal

T = TypeVar("T")

# -- names and label syntax (apimachinery's validation rules) -------------------------------------

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_RESERVED_SUFFIXES = ("kubernetes.io", "k8s.io")
ALLOWED_RESERVED_PREFIXES = frozenset({"node-role.kubernetes.io"})
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
ROLE_PREFIX = "node-role.kubernetes.io/"

LOG_TAIL_DEFAULT = 200
LOG_TAIL_MAX = 5000
LOG_BYTES_MAX = 1024 * 1024
DRAIN_GRACE_MAX = 86_400


def validate_dns_label(value: str, field: str) -> str:
    if not (0 < len(value) <= 63 and _DNS_LABEL.fullmatch(value)):
        raise ValidationError(field, f"{value[:80]!r} is not a valid DNS label (lowercase letters, digits and '-', "
                                     "starting and ending with a letter or digit, at most 63 characters)")
    return value


def view_namespace(namespace: str | None, all_namespaces: bool) -> str | None:
    """The namespace a cluster view lists: the sessions namespace, unless the caller names one
    (`?namespace=`) or asks for every namespace (`?allNamespaces=true`: None)."""
    if all_namespaces and namespace is not None:
        raise ValidationError("namespace", "give either namespace or allNamespaces=true, not both")
    if all_namespaces:
        return None
    if namespace is not None:
        return validate_dns_label(namespace, "namespace")
    return environment().sessions_namespace


def validate_dns_subdomain(value: str, field: str) -> str:
    if not (0 < len(value) <= 253 and _DNS_SUBDOMAIN.fullmatch(value)):
        raise ValidationError(field, f"{value[:80]!r} is not a valid DNS subdomain (lowercase letters, digits, '-' "
                                     "and '.', at most 253 characters)")
    return value


def validate_label_key(key: object, field: str = "key") -> str:
    """A qualified name: `[prefix/]name`, prefix a DNS subdomain, name at most 63 characters."""
    if not isinstance(key, str) or not key:
        raise ValidationError(field, "must be a non-empty string")
    prefix, slash, name = key.rpartition("/")
    if slash and not (0 < len(prefix) <= 253 and _DNS_SUBDOMAIN.fullmatch(prefix)):
        raise ValidationError(field, f"the prefix of {key[:80]!r} must be a DNS subdomain (lowercase letters, "
                                     "digits, '-' and '.', at most 253 characters)")
    if not (0 < len(name) <= 63 and _QUALIFIED_NAME.fullmatch(name)):
        raise ValidationError(field, f"the name part of {key[:80]!r} must be at most 63 characters of letters, "
                                     "digits, '-', '_' and '.', starting and ending with a letter or digit")
    return key


def validate_label_value(value: object, field: str = "value") -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(field, "must be a string")
    if value and not (len(value) <= 63 and _QUALIFIED_NAME.fullmatch(value)):
        raise ValidationError(field, f"{value[:80]!r} must be empty or at most 63 characters of letters, digits, "
                                     "'-', '_' and '.', starting and ending with a letter or digit")
    return value


def is_reserved_key(key: str) -> bool:
    """A label under kubernetes.io or k8s.io (or a subdomain of them) is the cluster's, except node roles."""
    prefix = key.rpartition("/")[0]
    if not prefix or prefix in ALLOWED_RESERVED_PREFIXES:
        return False
    return any(prefix == s or prefix.endswith("." + s) for s in _RESERVED_SUFFIXES)


def _changeable_label_key(key: object) -> str:
    checked = validate_label_key(key)
    if is_reserved_key(checked):
        raise ValidationError("key", f"{checked!r} is reserved for Kubernetes (kubernetes.io and k8s.io prefixes); "
                                     f"only {', '.join(sorted(ALLOWED_RESERVED_PREFIXES))} labels may be changed")
    return checked


# -- quantities and times --------------------------------------------------------------------------

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def _amount(value: object) -> Decimal:
    """A quantity the cluster reported, in base units; anything unreadable counts as 0 (never an error:
    these are the cluster's own figures, not input)."""
    text = str(value).strip() if value is not None else ""
    match = _QUANTITY.fullmatch(text) if len(text) <= 64 else None
    if match is None:
        return Decimal(0)
    number, suffix = Decimal(match.group(1)), match.group(2) or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    exponent = _DECIMAL[suffix] if suffix in _DECIMAL else int(suffix[1:])
    return number.scaleb(max(-30, min(30, exponent)))


def cpu_millicores(value: object) -> int:
    return math.ceil(_amount(value) * 1000)


def memory_bytes(value: object) -> int:
    return math.ceil(_amount(value))


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def human_age(created: object, now: datetime | None = None) -> str:
    """kubectl's AGE column: 45s, 7m30s, 5h, 3d4h, 400d, 2y30d."""
    started = _parse_time(created)
    if started is None:
        return ""
    seconds = max(0, int(((now or datetime.now(UTC)) - started).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    if days < 365 * 8:
        return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"
    return f"{days // 365}y"


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole > 0 else 0.0


# -- reading the cluster ---------------------------------------------------------------------------

def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = obj.get("metadata") or {}
    return meta


def _is_terminal(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_requests(pod: dict[str, Any]) -> tuple[int, int]:
    """(millicores, bytes) the scheduler reserves for a pod: the larger of its containers' sum and its
    largest init container, plus overhead. A container with a limit but no request requests its limit."""

    def one(container: dict[str, Any]) -> tuple[int, int]:
        resources = container.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        cpu = requests.get("cpu", limits.get("cpu"))
        memory = requests.get("memory", limits.get("memory"))
        return (cpu_millicores(cpu) if cpu is not None else 0, memory_bytes(memory) if memory is not None else 0)

    spec = pod.get("spec") or {}
    sums = [one(c) for c in spec.get("containers") or [] if isinstance(c, dict)]
    inits = [one(c) for c in spec.get("initContainers") or [] if isinstance(c, dict)]
    cpu = max(sum(c for c, _ in sums), max((c for c, _ in inits), default=0))
    memory = max(sum(m for _, m in sums), max((m for _, m in inits), default=0))
    overhead = spec.get("overhead") or {}
    cpu += cpu_millicores(overhead["cpu"]) if "cpu" in overhead else 0
    memory += memory_bytes(overhead["memory"]) if "memory" in overhead else 0
    return cpu, memory


def _ready(node: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def node_roles(labels: dict[str, str]) -> list[str]:
    roles = {key[len(ROLE_PREFIX):] for key in labels if key.startswith(ROLE_PREFIX) and key != ROLE_PREFIX}
    legacy = labels.get("kubernetes.io/role")
    if legacy:
        roles.add(legacy)
    return sorted(roles)


def node_summary(node: dict[str, Any], pods: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The contract's node object; `pods` are the non-terminal pods bound to this node."""
    meta, spec, status = _meta(node), node.get("spec") or {}, node.get("status") or {}
    labels = dict(meta.get("labels") or {})
    ready, unschedulable = _ready(node), bool(spec.get("unschedulable"))
    capacity, allocatable = dict(status.get("capacity") or {}), dict(status.get("allocatable") or {})
    alloc_cpu = cpu_millicores(allocatable.get("cpu", capacity.get("cpu", 0)))
    alloc_memory = memory_bytes(allocatable.get("memory", capacity.get("memory", 0)))
    alloc_pods = int(_amount(allocatable.get("pods", capacity.get("pods", 0))))
    pod_list = list(pods)
    cpu = memory = 0
    for pod in pod_list:
        pod_cpu, pod_memory = pod_requests(pod)
        cpu, memory = cpu + pod_cpu, memory + pod_memory
    info = status.get("nodeInfo") or {}
    return {
        "name": meta.get("name", ""),
        "status": "SchedulingDisabled" if unschedulable else ("Ready" if ready else "NotReady"),
        "ready": ready,
        "unschedulable": unschedulable,
        "roles": node_roles(labels),
        "labels": labels,
        "taints": [{k: t[k] for k in ("key", "value", "effect", "timeAdded") if k in t}
                   for t in spec.get("taints") or [] if isinstance(t, dict)],
        "capacity": capacity,
        "allocatable": allocatable,
        "usage": {
            "cpu": format_cpu(cpu), "memory": format_memory(memory), "pods": len(pod_list),
            "cpuMillicores": cpu, "memoryBytes": memory,
            "cpuPercent": _percent(cpu, alloc_cpu), "memoryPercent": _percent(memory, alloc_memory),
            "podsPercent": _percent(len(pod_list), alloc_pods),
        },
        "conditions": [{k: c[k] for k in ("type", "status", "reason", "message", "lastHeartbeatTime",
                                          "lastTransitionTime") if k in c}
                       for c in status.get("conditions") or [] if isinstance(c, dict)],
        "addresses": [dict(a) for a in status.get("addresses") or [] if isinstance(a, dict)],
        "info": {k: info[k] for k in ("kubeletVersion", "osImage", "kernelVersion", "containerRuntimeVersion",
                                      "architecture", "operatingSystem") if k in info},
        "podCount": len(pod_list),
        "createdAt": meta.get("creationTimestamp"),
        "age": human_age(meta.get("creationTimestamp")),
    }


def _pods_by_node(field_selector: str | None = None) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for pod in store.list_items("Pod", None, field_selector=field_selector):
        node_name = (pod.get("spec") or {}).get("nodeName")
        if node_name and not _is_terminal(pod):
            grouped.setdefault(node_name, []).append(pod)
    return grouped


def list_nodes() -> list[dict[str, Any]]:
    nodes = sorted(store.list_items("Node", None), key=lambda n: _meta(n).get("name", ""))
    pods = _pods_by_node()
    return [node_summary(n, pods.get(_meta(n).get("name", ""), [])) for n in nodes]


def _node(name: str) -> dict[str, Any]:
    validate_dns_subdomain(name, "name")
    node = store.read_node(name)
    if node is None:
        raise NotFound(f"node {name} not found", error="node not found")
    return node


def get_node(name: str) -> dict[str, Any]:
    node = _node(name)
    pods = _pods_by_node(f"spec.nodeName={name}").get(name, [])
    return node_summary(node, pods)


def node_stats() -> dict[str, Any]:
    """Totals over every node: counts by state, CPU and memory capacity/allocatable/requested, pods."""
    nodes = list_nodes()
    totals = {"cpu": [0, 0, 0], "memory": [0, 0, 0]}
    pod_capacity = 0
    for n in nodes:
        totals["cpu"][0] += cpu_millicores(n["capacity"].get("cpu", 0))
        totals["cpu"][1] += cpu_millicores(n["allocatable"].get("cpu", n["capacity"].get("cpu", 0)))
        totals["cpu"][2] += n["usage"]["cpuMillicores"]
        totals["memory"][0] += memory_bytes(n["capacity"].get("memory", 0))
        totals["memory"][1] += memory_bytes(n["allocatable"].get("memory", n["capacity"].get("memory", 0)))
        totals["memory"][2] += n["usage"]["memoryBytes"]
        pod_capacity += int(_amount(n["allocatable"].get("pods", n["capacity"].get("pods", 0))))
    cpu, memory = totals["cpu"], totals["memory"]
    return {
        "nodes": len(nodes),
        "ready": sum(1 for n in nodes if n["ready"]),
        "notReady": sum(1 for n in nodes if not n["ready"]),
        "schedulingDisabled": sum(1 for n in nodes if n["unschedulable"]),
        "cpu": {"capacity": format_cpu(cpu[0]), "allocatable": format_cpu(cpu[1]), "requested": format_cpu(cpu[2]),
                "capacityMillicores": cpu[0], "allocatableMillicores": cpu[1], "requestedMillicores": cpu[2],
                "requestedPercent": _percent(cpu[2], cpu[1])},
        "memory": {"capacity": format_memory(memory[0]), "allocatable": format_memory(memory[1]),
                   "requested": format_memory(memory[2]), "capacityBytes": memory[0],
                   "allocatableBytes": memory[1], "requestedBytes": memory[2],
                   "requestedPercent": _percent(memory[2], memory[1])},
        "pods": sum(n["podCount"] for n in nodes),
        "podCapacity": pod_capacity,
    }


# -- the v0.2 contract's shapes (?format=v0.2) ----------------------------------------------------------
# Clients written for the earlier StreamSpace read the node list as a bare array whose nodes count
# their pods in `pods`, and the stats as totalNodes / readyNodes / totalCapacity. Same data, their shape.
NODE_FORMATS = ("v0.3", "v0.2")


def node_format(value: str | None) -> str:
    if value is None:
        return NODE_FORMATS[0]
    if value not in NODE_FORMATS:
        raise ValidationError("format", f"expected one of {', '.join(NODE_FORMATS)}, got {value!r}")
    return value


def node_v02(node: dict[str, Any]) -> dict[str, Any]:
    return {**node, "pods": node["podCount"]}


def node_stats_v02(stats: dict[str, Any]) -> dict[str, Any]:
    cpu, memory = stats["cpu"], stats["memory"]
    return {
        "totalNodes": stats["nodes"],
        "readyNodes": stats["ready"],
        "notReadyNodes": stats["notReady"],
        "totalCapacity": {"cpu": cpu["capacity"], "memory": memory["capacity"], "pods": stats["podCapacity"]},
        "totalAllocatable": {"cpu": cpu["allocatable"], "memory": memory["allocatable"]},
        "totalUsage": {"cpu": cpu["requested"], "memory": memory["requested"], "pods": stats["pods"]},
        "totalPods": stats["pods"],
    }


# -- changing nodes (audited) ----------------------------------------------------------------------

def _audited(caller: Principal, client_ip: str, action: str, node: str, change: Callable[[], T],
             details: Callable[[T], dict[str, Any]]) -> T:
    """Make `change` while an audit transaction is open, recording it only when it succeeded."""
    with transaction() as conn:
        result = change()
        audit.record(conn, caller, action, "node", node, client_ip, details(result))
    return result


def set_label(caller: Principal, client_ip: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    key = _changeable_label_key(body.get("key"))
    value = validate_label_value(body.get("value"))
    _node(name)
    _audited(caller, client_ip, "node.label.set", name,
             lambda: store.patch_node(name, {"metadata": {"labels": {key: value}}}),
             lambda _: {"key": key, "value": value})
    return get_node(name)


def remove_label(caller: Principal, client_ip: str, name: str, key: str) -> dict[str, Any]:
    key = _changeable_label_key(key)
    node = _node(name)
    if key not in (_meta(node).get("labels") or {}):
        raise NotFound(f"node {name} has no label {key}", error="label not found")
    _audited(caller, client_ip, "node.label.remove", name,
             lambda: store.patch_node(name, {"metadata": {"labels": {key: None}}}),
             lambda _: {"key": key})
    return get_node(name)


def _update_taints(name: str, edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
    """Read-modify-write of spec.taints guarded by the read resourceVersion, retried on a conflict, so a
    concurrent writer's taint is never lost."""
    for attempt in range(5):
        node = _node(name)
        taints = [dict(t) for t in (node.get("spec") or {}).get("taints") or [] if isinstance(t, dict)]
        # An empty list removes the field, as kubectl leaves it.
        patch = {"metadata": {"resourceVersion": _meta(node).get("resourceVersion")},
                 "spec": {"taints": edit(taints) or None}}
        try:
            store.patch_node(name, patch)
            return
        except KubeError as exc:
            if not exc.conflict or attempt == 4:
                raise


def add_taint(caller: Principal, client_ip: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    key = validate_label_key(body.get("key"))
    value = validate_label_value(body.get("value"))
    effect = body.get("effect")
    if effect not in TAINT_EFFECTS:
        raise ValidationError("effect", f"must be one of {', '.join(TAINT_EFFECTS)}")
    _node(name)

    def edit(taints: list[dict[str, Any]]) -> list[dict[str, Any]]:
        taint: dict[str, Any] = {"key": key, "effect": effect}
        if value:
            taint["value"] = value
        if effect == "NoExecute":
            taint["timeAdded"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        # A taint is identified by key and effect: the same pair replaces the old value.
        return [t for t in taints if (t.get("key"), t.get("effect")) != (key, effect)] + [taint]

    _audited(caller, client_ip, "node.taint.add", name, lambda: _update_taints(name, edit),
             lambda _: {"key": key, "value": value, "effect": effect})
    return get_node(name)


def remove_taint(caller: Principal, client_ip: str, name: str, key: str, effect: str | None) -> dict[str, Any]:
    key = validate_label_key(key)
    if effect is not None and effect not in TAINT_EFFECTS:
        raise ValidationError("effect", f"must be one of {', '.join(TAINT_EFFECTS)}")
    node = _node(name)

    def matches(t: dict[str, Any]) -> bool:
        return t.get("key") == key and (effect is None or t.get("effect") == effect)

    if not any(matches(t) for t in (node.get("spec") or {}).get("taints") or []):
        raise NotFound(f"node {name} has no taint {key}" + (f" with effect {effect}" if effect else ""),
                       error="taint not found")
    _audited(caller, client_ip, "node.taint.remove", name,
             lambda: _update_taints(name, lambda taints: [t for t in taints if not matches(t)]),
             lambda _: {"key": key, **({"effect": effect} if effect else {})})
    return get_node(name)


def _set_unschedulable(name: str, unschedulable: bool) -> dict[str, Any]:
    # Uncordoning removes the field, as kubectl does (false is its default).
    return store.patch_node(name, {"spec": {"unschedulable": True if unschedulable else None}})


def cordon(caller: Principal, client_ip: str, name: str, unschedulable: bool = True) -> dict[str, Any]:
    _node(name)
    _audited(caller, client_ip, "node.cordon" if unschedulable else "node.uncordon", name,
             lambda: _set_unschedulable(name, unschedulable), lambda _: {})
    return get_node(name)


def _owner_kind(pod: dict[str, Any]) -> str | None:
    for ref in _meta(pod).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("kind"))
    return None


def drain_node(name: str, grace: int | None) -> dict[str, Any]:
    """Cordon, then evict every pod bound to the node except DaemonSet and mirror pods. One pod's refusal
    (a PodDisruptionBudget answers 429) does not stop the others; the answer lists each outcome."""
    _set_unschedulable(name, True)
    evicted: list[dict[str, str]] = []
    skipped: list[dict[str, str]] = []
    failed: list[dict[str, str]] = []
    unreachable = False
    pods = sorted(store.list_items("Pod", None, field_selector=f"spec.nodeName={name}"),
                  key=lambda p: (_meta(p).get("namespace", ""), _meta(p).get("name", "")))
    for pod in pods:
        meta = _meta(pod)
        ref = {"namespace": meta.get("namespace", ""), "name": meta.get("name", "")}
        if (pod.get("spec") or {}).get("nodeName") != name:
            continue
        if _owner_kind(pod) == "DaemonSet":
            skipped.append({**ref, "reason": "DaemonSet-managed"})
            continue
        if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
            skipped.append({**ref, "reason": "mirror pod (managed by the kubelet)"})
            continue
        if meta.get("deletionTimestamp"):
            skipped.append({**ref, "reason": "already terminating"})
            continue
        if unreachable:
            failed.append({**ref, "error": "not attempted: the Kubernetes API became unreachable"})
            continue
        try:
            store.evict(meta["namespace"], meta["name"], grace)
        except ClusterUnavailable:
            unreachable = True
            failed.append({**ref, "error": "the Kubernetes API is unreachable"})
            continue
        except KubeError as exc:
            if exc.not_found:
                skipped.append({**ref, "reason": "already gone"})
            elif exc.status == 429:
                failed.append({**ref, "error": "eviction refused (disruption budget): " + exc.message[:300]})
            else:
                failed.append({**ref, "error": f"{exc.status} {exc.reason}: {exc.message[:300]}"})
            continue
        evicted.append(ref)
    return {"node": name, "cordoned": True, "evicted": evicted, "skipped": skipped, "failed": failed,
            "complete": not failed}


DRAIN_FIELDS = frozenset({"gracePeriodSeconds", "grace_period_seconds"})


def drain(caller: Principal, client_ip: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """`gracePeriodSeconds` as in every other body; `grace_period_seconds`, its old name, is
    accepted for one release (the OpenAPI document marks it deprecated)."""
    if DRAIN_FIELDS <= set(body):
        raise ValidationError("gracePeriodSeconds",
                              "give gracePeriodSeconds only (grace_period_seconds is its old name)")
    field = "grace_period_seconds" if "grace_period_seconds" in body else "gracePeriodSeconds"
    grace = body.get(field)
    if grace is not None and (isinstance(grace, bool) or not isinstance(grace, int)
                              or not 0 <= grace <= DRAIN_GRACE_MAX):
        raise ValidationError(field, f"must be an integer from 0 to {DRAIN_GRACE_MAX} "
                                     "(omit it to use each pod's own grace period)")
    _node(name)
    return _audited(caller, client_ip, "node.drain", name, lambda: drain_node(name, grace),
                    lambda r: {"gracePeriodSeconds": grace, "evicted": len(r["evicted"]),
                               "skipped": len(r["skipped"]), "failed": len(r["failed"]),
                               "failedPods": [f"{f['namespace']}/{f['name']}" for f in r["failed"]][:50]})


# -- read-only views -------------------------------------------------------------------------------

def _ports(ports: Iterable[Any]) -> list[dict[str, Any]]:
    keys = ("name", "port", "targetPort", "nodePort", "protocol")
    return [{k: p[k] for k in keys if k in p} for p in ports if isinstance(p, dict)]


def pod_view(pod: dict[str, Any]) -> dict[str, Any]:
    meta, spec, status = _meta(pod), pod.get("spec") or {}, pod.get("status") or {}
    statuses = [s for s in status.get("containerStatuses") or [] if isinstance(s, dict)]
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    cpu, memory = pod_requests(pod)
    return {
        "name": meta.get("name", ""), "namespace": meta.get("namespace", ""),
        "status": "Terminating" if meta.get("deletionTimestamp") else status.get("phase", "Unknown"),
        "phase": status.get("phase", "Unknown"),
        "ready": f"{sum(1 for s in statuses if s.get('ready'))}/{len(containers)}",
        "restarts": sum(int(s.get("restartCount") or 0) for s in statuses),
        "node": spec.get("nodeName"), "podIP": status.get("podIP"),
        "containers": [{"name": c.get("name"), "image": c.get("image")} for c in containers],
        "requests": {"cpu": format_cpu(cpu), "memory": format_memory(memory)},
        "owner": _owner_kind(pod),
        "labels": dict(meta.get("labels") or {}),
        "createdAt": meta.get("creationTimestamp"), "age": human_age(meta.get("creationTimestamp")),
    }


def deployment_view(dep: dict[str, Any]) -> dict[str, Any]:
    meta, spec, status = _meta(dep), dep.get("spec") or {}, dep.get("status") or {}
    template = (spec.get("template") or {}).get("spec") or {}
    return {
        "name": meta.get("name", ""), "namespace": meta.get("namespace", ""),
        "replicas": spec.get("replicas", 1),
        "readyReplicas": status.get("readyReplicas", 0), "availableReplicas": status.get("availableReplicas", 0),
        "updatedReplicas": status.get("updatedReplicas", 0),
        "images": [c.get("image") for c in template.get("containers") or [] if isinstance(c, dict)],
        "labels": dict(meta.get("labels") or {}),
        "createdAt": meta.get("creationTimestamp"), "age": human_age(meta.get("creationTimestamp")),
    }


def service_view(svc: dict[str, Any]) -> dict[str, Any]:
    meta, spec = _meta(svc), svc.get("spec") or {}
    return {
        "name": meta.get("name", ""), "namespace": meta.get("namespace", ""),
        "type": spec.get("type", "ClusterIP"), "clusterIP": spec.get("clusterIP"),
        "ports": _ports(spec.get("ports") or []), "selector": dict(spec.get("selector") or {}),
        "labels": dict(meta.get("labels") or {}),
        "createdAt": meta.get("creationTimestamp"), "age": human_age(meta.get("creationTimestamp")),
    }


def namespace_view(ns: dict[str, Any]) -> dict[str, Any]:
    meta = _meta(ns)
    return {
        "name": meta.get("name", ""), "status": (ns.get("status") or {}).get("phase", "Active"),
        "labels": dict(meta.get("labels") or {}),
        "createdAt": meta.get("creationTimestamp"), "age": human_age(meta.get("creationTimestamp")),
    }


VIEWS: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "pods": ("Pod", pod_view),
    "deployments": ("Deployment", deployment_view),
    "services": ("Service", service_view),
    "namespaces": ("Namespace", namespace_view),
}


def list_view(plural: str, namespace: str | None) -> list[dict[str, Any]]:
    """Summaries of one kind, in `namespace` (None: every namespace), sorted by namespace then name."""
    kind, view = VIEWS[plural]
    items = [view(obj) for obj in store.list_items(kind, namespace)]
    return sorted(items, key=lambda v: (v.get("namespace", ""), v["name"]))


def pod_logs(namespace: str, name: str, container: str | None, tail_lines: int, limit_bytes: int) -> dict[str, Any]:
    """The last `tail_lines` lines of a container's log, at most `limit_bytes` bytes, as JSON text."""
    validate_dns_label(namespace, "namespace")
    validate_dns_subdomain(name, "name")
    if container is not None:
        validate_dns_label(container, "container")
    limit_bytes = max(1, min(limit_bytes, LOG_BYTES_MAX))
    try:
        text = store.container_log(namespace, name, container, tail_lines, limit_bytes)
    except KubeError as exc:
        if exc.status == 400:  # no such container, or it has not started: the API server says which
            raise Invalid(exc.message or "the log is not available", error="logs unavailable") from None
        raise
    return {"namespace": namespace, "pod": name, "container": container, "tailLines": tail_lines,
            "limitBytes": limit_bytes, "truncated": len(text.encode()) >= limit_bytes, "logs": text}
