"""The simulated cluster's Nodes and kube-scheduler.

Checked against the Kubernetes source (kubernetes/kubernetes):
- Filters, in the default plugin order, each node failing at its first refusing plugin:
  NodeUnschedulable (`pkg/scheduler/framework/plugins/nodeunschedulable`: "node(s) were unschedulable",
  unless the pod tolerates `node.kubernetes.io/unschedulable:NoSchedule`), TaintToleration
  (`plugins/tainttoleration/taint_toleration.go`: NoSchedule and NoExecute taints must be tolerated,
  "node(s) had untolerated taint {key: value}"), NodeAffinity (`plugins/nodeaffinity/node_affinity.go`:
  nodeSelector and required node affinity, "node(s) didn't match Pod's node affinity/selector"),
  NodeResourcesFit (`plugins/noderesources/fit.go`: the sum of the requests of the node's non-terminal
  pods plus the pod's must fit `status.allocatable`, "Insufficient cpu", "Too many pods"; terminating pods
  still count until they are gone) and VolumeBinding (`plugins/volumebinding`: a bound local volume's node
  affinity, "node(s) had volume node affinity conflict"), in the Filter order of the default profile
  (`pkg/scheduler/apis/config/v1/default_plugins.go`: NodeResourcesFit before VolumeBinding).
- A pod's request is the sum of its containers' requests, or its largest init container's if larger
  (`k8s.io/component-helpers/resource/helpers.go` PodRequests).
- When no node fits, the scheduler writes `PodScheduled=False`, reason `Unschedulable`, with the
  FitError message (`pkg/scheduler/framework/types.go`: "0/N nodes are available: <count> <reason>, ...",
  reasons sorted, then the preemption message) and records a Warning event `FailedScheduling`
  (`pkg/scheduler/schedule_one.go` handleSchedulingFailure); the pod stays Pending and is retried when
  nodes or pods change. With no nodes at all the message is "no nodes available to schedule pods".
- A pod is bound through the binding subresource, which sets `spec.nodeName` and `PodScheduled=True`
  (`pkg/registry/core/pod/storage/storage.go` setPodHostAndAnnotations); binding a bound pod is a 409.
- Among the nodes that fit, the one with the least requested share of cpu and memory wins
  (NodeResourcesFit's default LeastAllocated score).

Not modelled: preemption, pod (anti-)affinity, topology spread, host ports, volume topology.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from streamspace.records import record

from .errors import ApiError
from .volumes import PV_KEY, PVC_KEY, SC_KEY, SELECTED_NODE, claim_names

if TYPE_CHECKING:
    from .api import Api
    from .store import Store

NODE_KEY = ("", "nodes")
POD_KEY = ("", "pods")
EVENT_KEY = ("", "events")
SCHEDULER = "default-scheduler"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
KUBELET_VERSION = "v1.31.0"

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def quantity(value: object) -> Decimal:
    """A resource quantity in base units (cores, bytes, pods); unreadable figures count as 0."""
    text = str(value).strip() if value is not None else ""
    match = _QUANTITY.fullmatch(text) if len(text) <= 64 else None
    if match is None:
        return Decimal(0)
    number, suffix = Decimal(match.group(1)), match.group(2) or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    exponent = _DECIMAL[suffix] if suffix in _DECIMAL else int(suffix[1:])
    return number.scaleb(max(-30, min(30, exponent)))


@record
class NodeSpec:
    """One simulated node: what its kubelet would register."""

    name: str
    cpu: str = "8"
    memory: str = "32Gi"
    pods: int = 110
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Mapping[str, str], ...] = ()

    def as_object(self, index: int = 0) -> dict[str, Any]:
        labels = {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                  "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64", **dict(self.labels)}
        resources = {"cpu": self.cpu, "memory": self.memory, "pods": str(self.pods), "ephemeral-storage": "100Gi"}
        node: dict[str, Any] = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.name, "labels": labels},
                                "spec": {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"]}}
        if self.taints:
            node["spec"]["taints"] = [dict(t) for t in self.taints]
        node["status"] = {
            "capacity": dict(resources), "allocatable": dict(resources),
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
                 "message": "kubelet has sufficient memory available"},
                {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure",
                 "message": "kubelet has no disk pressure"},
                {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID",
                 "message": "kubelet has sufficient PID available"},
                {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "message": "kubelet is posting ready status"},
            ],
            "addresses": [{"type": "InternalIP", "address": f"10.0.0.{10 + index}"},
                          {"type": "Hostname", "address": self.name}],
            "nodeInfo": {"kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": KUBELET_VERSION,
                         "architecture": "amd64", "operatingSystem": "linux", "osImage": "SIMULATED node",
                         "kernelVersion": "6.1.0", "containerRuntimeVersion": "sim://1.0", "machineID": self.name,
                         "systemUUID": self.name, "bootID": self.name},
        }
        return node


def default_nodes(count: int) -> list[NodeSpec]:
    return [NodeSpec(f"sim-node-{i}") for i in range(1, count + 1)]


def node_specs(nodes: int | Iterable[NodeSpec]) -> list[NodeSpec]:
    return default_nodes(nodes) if isinstance(nodes, int) else list(nodes)


# ---------------------------------------------------------------- requests and fit

def pod_requests(pod: Mapping[str, Any]) -> dict[str, Decimal]:
    spec = pod.get("spec") or {}
    total: dict[str, Decimal] = {}
    for c in spec.get("containers") or []:
        for name, value in (((c.get("resources") or {}).get("requests")) or {}).items():
            total[name] = total.get(name, Decimal(0)) + quantity(value)
    for c in spec.get("initContainers") or []:
        for name, value in (((c.get("resources") or {}).get("requests")) or {}).items():
            total[name] = max(total.get(name, Decimal(0)), quantity(value))
    for name, value in (spec.get("overhead") or {}).items():
        total[name] = total.get(name, Decimal(0)) + quantity(value)
    return total


def _terminal(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _tolerates(tolerations: list[dict[str, Any]], taint: Mapping[str, Any]) -> bool:
    """k8s.io/api/core/v1/toleration.go ToleratesTaint."""
    for t in tolerations:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        if t.get("key") and t.get("key") != taint.get("key"):
            continue
        operator = t.get("operator") or "Equal"
        if operator == "Exists" or (operator == "Equal" and (t.get("value") or "") == (taint.get("value") or "")):
            return True
    return False


def _expression_matches(expr: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, op, values = str(expr.get("key") or ""), expr.get("operator"), list(expr.get("values") or [])
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt") and key in labels and len(values) == 1:
        try:
            have, bound = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > bound if op == "Gt" else have < bound
    return False


def _affinity_matches(spec: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((((spec.get("affinity") or {}).get("nodeAffinity") or {})
                 .get("requiredDuringSchedulingIgnoredDuringExecution")) or {})
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return True
    # Terms are ORed, the expressions of one term ANDed.
    return any(all(_expression_matches(e, labels) for e in term.get("matchExpressions") or [])
               and all(str((node.get("metadata") or {}).get("name")) in (f.get("values") or [])
                       for f in term.get("matchFields") or [] if f.get("key") == "metadata.name")
               for term in terms)


@dataclass
class Verdict:
    node: str | None
    message: str = ""


@dataclass
class VolumeFit:
    """What the pod's claims demand of a node (kube-scheduler's VolumeBinding plugin)."""

    unresolvable: str = ""  # no node can help: a claim missing, being deleted, or unbound with Immediate binding
    terms: list[list[Mapping[str, Any]]] = field(default_factory=list)  # bound volumes' required node affinity
    pinned: str | None = None  # the node chosen for claims already waiting to be provisioned
    waiting: list[str] = field(default_factory=list)  # WaitForFirstConsumer claims not bound yet

    def fits(self, node: Mapping[str, Any]) -> bool:
        labels = (node.get("metadata") or {}).get("labels") or {}
        if self.pinned is not None and (node.get("metadata") or {}).get("name") != self.pinned:
            return False
        return all(any(all(_expression_matches(e, labels) for e in term.get("matchExpressions") or [])
                       for term in terms) for terms in self.terms)


def judge(pod: Mapping[str, Any], nodes: list[dict[str, Any]], pods: list[dict[str, Any]],
          volumes: VolumeFit | None = None) -> Verdict:
    """Where the default scheduler would place `pod` among `nodes`, given the bound `pods`."""
    if not nodes:
        return Verdict(None, "no nodes available to schedule pods")
    if volumes is not None and volumes.unresolvable:
        return Verdict(None, f"0/{len(nodes)} nodes are available: {volumes.unresolvable}. preemption: "
                             f"0/{len(nodes)} nodes are available: {len(nodes)} Preemption is not helpful for "
                             "scheduling.")
    spec = pod.get("spec") or {}
    tolerations = [t for t in spec.get("tolerations") or [] if isinstance(t, dict)]
    wanted = pod_requests(pod)
    reasons: dict[str, list[str]] = {}
    scores: list[tuple[Decimal, str]] = []
    for node in nodes:
        name = node["metadata"]["name"]
        nspec = node.get("spec") or {}
        if nspec.get("unschedulable") and not _tolerates(
                tolerations, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}):
            reasons[name] = ["node(s) were unschedulable"]
            continue
        untolerated = next((t for t in nspec.get("taints") or []
                            if t.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(tolerations, t)),
                           None)
        if untolerated is not None:
            reasons[name] = [f"node(s) had untolerated taint {{{untolerated.get('key')}: "
                             f"{untolerated.get('value') or ''}}}"]
            continue
        if not _affinity_matches(spec, node):
            reasons[name] = ["node(s) didn't match Pod's node affinity/selector"]
            continue
        allocatable = {k: quantity(v) for k, v in ((node.get("status") or {}).get("allocatable") or {}).items()}
        bound = [p for p in pods if (p.get("spec") or {}).get("nodeName") == name and not _terminal(p)]
        used: dict[str, Decimal] = {}
        for p in bound:
            for k, v in pod_requests(p).items():
                used[k] = used.get(k, Decimal(0)) + v
        insufficient = []
        if len(bound) + 1 > allocatable.get("pods", Decimal(0)):
            insufficient.append("Too many pods")
        for resource, amount in sorted(wanted.items()):
            if amount > 0 and used.get(resource, Decimal(0)) + amount > allocatable.get(resource, Decimal(0)):
                insufficient.append(f"Insufficient {resource}")
        if insufficient:
            reasons[name] = insufficient
            continue
        # VolumeBinding filters after NodeResourcesFit (the default profile's order), so a full node is
        # reported full even when its volumes would not fit either.
        if volumes is not None and not volumes.fits(node):
            reasons[name] = ["node(s) had volume node affinity conflict"]
            continue
        share = Decimal(0)
        for resource in ("cpu", "memory"):
            cap = allocatable.get(resource, Decimal(0))
            if cap > 0:
                share += (used.get(resource, Decimal(0)) + wanted.get(resource, Decimal(0))) / cap
        scores.append((share, name))
    if scores:
        return Verdict(min(scores)[1])
    histogram: dict[str, int] = {}
    for node_reasons in reasons.values():
        for reason in node_reasons:
            histogram[reason] = histogram.get(reason, 0) + 1
    listed = ", ".join(sorted(f"{count} {reason}" for reason, count in histogram.items()))
    # Preemption (DefaultPreemption's PostFilter message): only nodes refused for resources could be
    # helped by evicting lower-priority pods; the simulation has none to evict.
    by_resources = sum(1 for r in reasons.values() if all(x.startswith(("Insufficient", "Too many")) for x in r))
    helpless = len(reasons) - by_resources
    preemption = ", ".join(sorted(
        ([f"{by_resources} No preemption victims found for incoming pod"] if by_resources else [])
        + ([f"{helpless} Preemption is not helpful for scheduling"] if helpless else [])))
    return Verdict(None, f"0/{len(nodes)} nodes are available: {listed}. preemption: 0/{len(nodes)} nodes are "
                         f"available: {preemption}.")


class Scheduler:
    """Binds unbound pods to nodes, or records why it cannot, through the API like kube-scheduler."""

    def __init__(self, api: Api, store: Store) -> None:
        self.api = api
        self.store = store

    def ensure_nodes(self, nodes: Iterable[NodeSpec]) -> None:
        """Register the configured nodes (a restored cluster keeps the ones it has)."""
        rt = self.api.registry.get("", "v1", "nodes")
        if rt is None:
            raise RuntimeError("invariant broken: rt is None")
        for index, spec in enumerate(nodes):
            with self.store.txn():
                if self.store.get(NODE_KEY, "", spec.name) is not None:
                    continue
                obj = spec.as_object(index)
                status = obj.pop("status")
                self.api.create(rt, "", obj, manager="kubelet")
                current = self.api.get(rt, "", spec.name)
                current["status"] = status
                self.api.replace(rt, "", spec.name, current, subresource="status", manager="kubelet")

    def schedule(self, ns: str, name: str) -> str | None:
        """Bind the pod if a node fits (returns the node), else mark it unschedulable (returns None)."""
        from .api import now

        with self.store.txn():
            pod = self.store.get(POD_KEY, ns, name)
            if pod is None or pod["metadata"].get("deletionTimestamp"):
                return None
            if (pod.get("spec") or {}).get("nodeName"):
                return str(pod["spec"]["nodeName"])
            if (pod.get("spec") or {}).get("schedulerName", SCHEDULER) != SCHEDULER:
                return None  # another scheduler's pod
            nodes = [n for n in self.store.items(NODE_KEY)]
            pods = [p for p in self.store.items(POD_KEY) if (p.get("spec") or {}).get("nodeName")]
            volumes = self._volume_fit(pod)
            verdict = judge(pod, nodes, pods, volumes)
            if verdict.node is not None and volumes.waiting:
                failed = self._provisioning_failed(ns, volumes.waiting)
                if failed is None:
                    self._select_node(ns, volumes.waiting, verdict.node)
                    return None  # bound once the provisioner has made the volumes (their events retry us)
                verdict = Verdict(None, f'running PreBind plugin "VolumeBinding": binding volumes: provisioning '
                                        f'failed for PVC "{failed}"')
            if verdict.node is not None:
                self.api.bind(ns, name, verdict.node)
                return verdict.node
            status = copy.deepcopy(pod.get("status") or {})
            conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            old = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
            if old is not None and old.get("status") == "False" and old.get("message") == verdict.message:
                return None  # already said so; nothing changed
            reason = "SchedulerError" if verdict.message.startswith("running PreBind") else "Unschedulable"
            conditions.insert(0, {"type": "PodScheduled", "status": "False", "reason": reason,
                                  "message": verdict.message, "lastProbeTime": None,
                                  "lastTransitionTime": now()})
            status["conditions"] = conditions
            status["phase"] = "Pending"
            rt = self.api.registry.get("", "v1", "pods")
            if rt is None:
                raise RuntimeError("invariant broken: rt is None")
            body = self.api.out(rt, pod)
            body["status"] = status
            self.api.replace(rt, ns, name, body, subresource="status", manager=SCHEDULER)
            self._event(pod, verdict.message)
            return None

    def _volume_fit(self, pod: Mapping[str, Any]) -> VolumeFit:
        """The VolumeBinding plugin's PreFilter and Filter, from the pod's claims (inside the caller's txn)."""
        ns = str((pod.get("metadata") or {}).get("namespace") or "")
        fit = VolumeFit()
        for claim_name in claim_names(dict(pod)):
            claim = self.store.get(PVC_KEY, ns, claim_name)
            if claim is None:
                fit.unresolvable = f'persistentvolumeclaim "{claim_name}" not found'
                return fit
            if claim["metadata"].get("deletionTimestamp"):
                fit.unresolvable = f'persistentvolumeclaim "{claim_name}" is being deleted'
                return fit
            volume_name = (claim.get("spec") or {}).get("volumeName")
            if volume_name and (claim.get("status") or {}).get("phase") == "Bound":
                volume = self.store.get(PV_KEY, "", str(volume_name)) or {}
                terms = ((((volume.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {})
                         .get("nodeSelectorTerms"))
                if terms:
                    fit.terms.append(list(terms))
                continue
            storage_class = self.store.get(SC_KEY, "", str((claim.get("spec") or {}).get("storageClassName") or ""))
            if (storage_class or {}).get("volumeBindingMode") != "WaitForFirstConsumer":
                fit.unresolvable = "pod has unbound immediate PersistentVolumeClaims"
                return fit
            fit.waiting.append(claim_name)
            selected = (claim["metadata"].get("annotations") or {}).get(SELECTED_NODE)
            if selected:
                fit.pinned = str(selected)
        return fit

    def _provisioning_failed(self, ns: str, claims: list[str]) -> str | None:
        """The first waiting claim its provisioner refused (a ProvisioningFailed event after the node was chosen)."""
        for claim_name in claims:
            claim = self.store.get(PVC_KEY, ns, claim_name)
            if claim is None or not (claim["metadata"].get("annotations") or {}).get(SELECTED_NODE):
                continue
            if any(e.get("reason") == "ProvisioningFailed"
                   and (e.get("involvedObject") or {}).get("uid") == claim["metadata"].get("uid")
                   for e in self.store.items(("", "events"), ns)):
                return claim_name
        return None

    def _select_node(self, ns: str, claims: list[str], node: str) -> None:
        """Annotate the claims with the chosen node: the provisioner makes their volumes there."""
        rt = self.api.registry.get("", "v1", "persistentvolumeclaims")
        if rt is None:
            raise RuntimeError("invariant broken: rt is None")
        for claim_name in claims:
            claim = self.store.get(PVC_KEY, ns, claim_name)
            if claim is None or (claim["metadata"].get("annotations") or {}).get(SELECTED_NODE) == node:
                continue
            self.api.patch(rt, ns, claim_name, "application/merge-patch+json",
                           {"metadata": {"annotations": {SELECTED_NODE: node}}}, manager=SCHEDULER)

    def _event(self, pod: dict[str, Any], message: str) -> None:
        from .api import now, random_suffix

        rt = self.api.registry.get("", "v1", "events")
        if rt is None:
            raise RuntimeError("invariant broken: rt is None")
        meta = pod["metadata"]
        stamp = now()
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{random_suffix(10)}", "namespace": meta.get("namespace", "")},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                               "namespace": meta.get("namespace", ""), "uid": meta.get("uid"),
                               "resourceVersion": meta.get("resourceVersion")},
            "type": "Warning", "reason": "FailedScheduling", "message": message, "action": "Scheduling",
            "source": {"component": SCHEDULER}, "reportingComponent": SCHEDULER, "reportingInstance": SCHEDULER,
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
        }
        try:
            self.api.create(rt, meta.get("namespace", ""), body, manager=SCHEDULER)
        except ApiError:
            pass  # events are best effort, as in Kubernetes
