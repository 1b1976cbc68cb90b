"""The simulated DaemonSet controller: one pod per eligible node, rolled on template change.

Checked against the Kubernetes source (kubernetes/kubernetes pkg/controller/daemon):
- Which nodes run a pod (`NodeShouldRunDaemonPod`, `predicates`): the template's nodeName (if any)
  and required node affinity / nodeSelector must match the node; a NoSchedule or NoExecute taint
  the pod does not tolerate keeps a new pod off (an already running pod stays unless a NoExecute
  taint is untolerated). The pod is judged with the default DaemonSet tolerations added
  (`util.AddOrUpdateDaemonPodTolerations`: not-ready and unreachable NoExecute, disk-, memory-,
  pid-pressure and unschedulable NoSchedule, network-unavailable for hostNetwork pods), so a
  cordoned (unschedulable) node still runs daemon pods. Node resources are not a predicate: a pod
  that does not fit stays Pending (the scheduler says why).
- Pods (`syncNodes`, `util.CreatePodTemplate`): named `<daemonset>-<suffix>`, labelled with the
  template's labels plus `controller-revision-hash` and `pod-template-generation`, owned by the
  DaemonSet (controller, blockOwnerDeletion), with the default tolerations, and pinned to their node
  by required node affinity on `metadata.name` (`util.ReplaceDaemonSetPodNodeNameNodeAffinity`);
  the default scheduler binds them there.
- Extra pods on a node (`podsShouldBeOnNode`): failed pods are deleted; of several, the oldest is kept.
- Rolling update (`update.go` rollingUpdate, maxSurge 0): an old-revision pod that is not ready is
  replaced at once; ready ones are deleted up to `maxUnavailable` (default 1, an int or a percentage of
  the desired nodes rounded up) minus the nodes already without a ready pod; the node then gets a
  pod of the new revision. OnDelete leaves old pods alone.
- Status (`updateDaemonSetStatus`, counted per node over its oldest pod): desiredNumberScheduled,
  currentNumberScheduled, numberMisscheduled, numberReady, updatedNumberScheduled, numberAvailable
  (minReadySeconds is not modelled: ready is available), numberUnavailable, observedGeneration;
  the four required counts are written even when zero, the others omitted at zero as the API does.

Not modelled: ControllerRevision objects (the revision hash is computed from the template), maxSurge,
burst limits and failed-pod backoff.
"""

from __future__ import annotations

import copy
import logging
import math
from typing import TYPE_CHECKING, Any

from .api import random_suffix
from .errors import ApiError
from .scheduler import NODE_KEY, POD_KEY, _affinity_matches, _tolerates
from .workloads import template_hash

if TYPE_CHECKING:
    from .api import Api
    from .kubelet import Kubelet
    from .resources import ResourceType
    from .store import Event, Store

log = logging.getLogger("streamspace.sim.daemonset")

DAEMONSET_KEY = ("apps", "daemonsets")
MANAGER = "kube-controller-manager"
REVISION_LABEL = "controller-revision-hash"
GENERATION_LABEL = "pod-template-generation"
GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"

DEFAULT_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
NETWORK_UNAVAILABLE = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}


def daemon_pod_spec(template_spec: dict[str, Any]) -> dict[str, Any]:
    """The template's pod spec with the default DaemonSet tolerations added (replacing same-key ones)."""
    spec = copy.deepcopy(template_spec)
    defaults = list(DEFAULT_TOLERATIONS) + ([NETWORK_UNAVAILABLE] if spec.get("hostNetwork") else [])
    keys = {(t["key"], t["effect"]) for t in defaults}
    kept = [t for t in spec.get("tolerations") or [] if (t.get("key"), t.get("effect")) not in keys]
    spec["tolerations"] = kept + [dict(t) for t in defaults]
    return spec


def should_run(node: dict[str, Any], daemonset: dict[str, Any]) -> tuple[bool, bool]:
    """(shouldRun, shouldContinueRunning) of `NodeShouldRunDaemonPod`."""
    template_spec = ((daemonset.get("spec") or {}).get("template") or {}).get("spec") or {}
    pinned = template_spec.get("nodeName")
    if pinned and pinned != node["metadata"]["name"]:
        return False, False
    spec = daemon_pod_spec(template_spec)
    if not _affinity_matches(spec, node):
        return False, False
    tolerations = spec["tolerations"]
    taints = [t for t in (node.get("spec") or {}).get("taints") or []
              if t.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(tolerations, t)]
    if taints:
        return False, not any(t.get("effect") == "NoExecute" for t in taints)
    return True, True


def pinned_affinity(affinity: dict[str, Any] | None, node: str) -> dict[str, Any]:
    """`ReplaceDaemonSetPodNodeNameNodeAffinity`: required node affinity on exactly this node."""
    out = copy.deepcopy(affinity or {})
    node_affinity = out.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [{
        "matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}
    return out


def _pod_node(pod: dict[str, Any]) -> str:
    """The node a daemon pod is bound to, or pinned to by its affinity while not bound yet."""
    bound = (pod.get("spec") or {}).get("nodeName")
    if bound:
        return str(bound)
    terms = (((((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {})
              .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or [])
    for term in terms:
        for field in term.get("matchFields") or []:
            if field.get("key") == "metadata.name" and field.get("operator") == "In" and field.get("values"):
                return str(field["values"][0])
    return ""


def _owner(pod: dict[str, Any] | None, key: str) -> str | None:
    """`key` ("uid" or "name") of the pod's controlling DaemonSet, if a DaemonSet controls it."""
    for ref in (pod or {}).get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "DaemonSet":
            return str(ref.get(key))
    return None


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _max_unavailable(daemonset: dict[str, Any], desired: int) -> int:
    strategy = (daemonset.get("spec") or {}).get("updateStrategy") or {}
    value = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1)
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(desired * int(value[:-1]) / 100)
    return int(value)


class DaemonSetController:
    """Runs on the simulated kubelet's task queue (task "daemonset"), so it is synchronous with every
    time at 0 and on the kubelet's thread otherwise, like the Deployment controller there."""

    def __init__(self, api: Api, store: Store, kubelet: Kubelet) -> None:
        self.api = api
        self.store = store
        self.kubelet = kubelet
        kubelet.handlers["daemonset"] = self._sync
        store.add_listener(self._on_event)

    def resync(self) -> None:
        with self.store.txn():
            names = [(o["metadata"].get("namespace", ""), o["metadata"]["name"])
                     for o in self.store.items(DAEMONSET_KEY)]
        for ns, name in names:
            self.kubelet.enqueue(("daemonset", ns, name), 0.0)

    def _on_event(self, ev: Event) -> None:
        if ev.key == DAEMONSET_KEY and ev.type != "DELETED":
            self.kubelet.enqueue(("daemonset", ev.obj["metadata"].get("namespace", ""),
                                  ev.obj["metadata"]["name"]), 0.0)
        elif ev.key == POD_KEY:
            ns = ev.obj["metadata"].get("namespace", "")
            for pod in (ev.obj, ev.prev):
                owner = _owner(pod, "name")
                if owner:
                    self.kubelet.enqueue(("daemonset", ns, owner), 0.0)
        elif ev.key == NODE_KEY:
            self.resync()  # a node came, went or changed labels, taints or schedulability

    def _types(self) -> tuple[ResourceType, ResourceType]:
        ds_rt = self.api.registry.get("apps", "v1", "daemonsets")
        pod_rt = self.api.registry.get("", "v1", "pods")
        if ds_rt is None or pod_rt is None:
            raise RuntimeError("invariant broken: ds_rt or pod_rt is None")
        return ds_rt, pod_rt

    def _state(self, ns: str, name: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]],
                                                  dict[str, list[dict[str, Any]]]]:
        """The DaemonSet, the nodes, and its pods by node (bound first, then oldest first)."""
        with self.store.txn():
            ds = self.store.get(DAEMONSET_KEY, ns, name)
            if ds is None or ds["metadata"].get("deletionTimestamp"):
                return None, [], {}
            ds = copy.deepcopy(ds)
            nodes = [copy.deepcopy(n) for n in self.store.items(NODE_KEY)]
            uid = ds["metadata"]["uid"]
            # A terminating pod still occupies its node until it is gone (`getNodesToDaemonPods`).
            pods = [copy.deepcopy(p) for p in self.store.items(POD_KEY, ns) if _owner(p, "uid") == uid]
        by_node: dict[str, list[dict[str, Any]]] = {}
        for pod in sorted(pods, key=lambda p: (not (p.get("spec") or {}).get("nodeName"),
                                               p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"])):
            by_node.setdefault(_pod_node(pod), []).append(pod)
        return ds, nodes, by_node

    def _sync(self, ns: str, name: str) -> None:
        ds_rt, pod_rt = self._types()
        ds, nodes, by_node = self._state(ns, name)
        if ds is None:
            return
        template = (ds.get("spec") or {}).get("template") or {}
        revision = template_hash(template)
        to_delete: list[str] = []
        to_create: list[str] = []
        node_names = {n["metadata"]["name"] for n in nodes}
        for node in nodes:
            node_name = node["metadata"]["name"]
            pods = by_node.get(node_name, [])
            live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            run, keep = should_run(node, ds)
            if run and not pods:
                to_create.append(node_name)
            elif keep:
                failed = [p for p in live if (p.get("status") or {}).get("phase") == "Failed"]
                to_delete += [p["metadata"]["name"] for p in failed]
                alive = [p for p in live if p not in failed]
                if failed and not alive and run:
                    to_create.append(node_name)
                to_delete += [p["metadata"]["name"] for p in alive[1:]]  # keep the oldest
            else:
                to_delete += [p["metadata"]["name"] for p in live]
        # Pods pinned to a node that no longer exists and never bound: nothing else removes them.
        for node_name, pods in by_node.items():
            if node_name not in node_names:
                to_delete += [p["metadata"]["name"] for p in pods if not (p.get("spec") or {}).get("nodeName")
                              and not p["metadata"].get("deletionTimestamp")]
        strategy = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("type", "RollingUpdate")
        if strategy == "RollingUpdate":
            to_delete += self._roll(ds, nodes, by_node, revision, set(to_delete))
        for pod_name in dict.fromkeys(to_delete):
            self._delete(pod_rt, ns, pod_name)
        for node_name in to_create:
            self._create(pod_rt, ds, template, revision, node_name)
        self._write_status(ds_rt, ns, name, revision)

    def _roll(self, ds: dict[str, Any], nodes: list[dict[str, Any]], by_node: dict[str, list[dict[str, Any]]],
              revision: str, deleting: set[str]) -> list[str]:
        """Old-revision pods to delete now (rollingUpdate with maxSurge 0)."""
        desired = sum(1 for n in nodes if should_run(n, ds)[0])
        budget = _max_unavailable(ds, desired)
        unavailable = 0
        candidates: list[str] = []
        out: list[str] = []
        for node in nodes:
            if not should_run(node, ds)[0]:
                continue
            pods = by_node.get(node["metadata"]["name"], [])
            if not pods or not _ready(pods[0]) or pods[0]["metadata"].get("deletionTimestamp"):
                unavailable += 1
            pods = [p for p in pods if p["metadata"]["name"] not in deleting
                    and not p["metadata"].get("deletionTimestamp")]
            if len(pods) != 1:
                continue  # none, or extras being pruned first (`findUpdatedPodsOnNode`)
            pod = pods[0]
            if (pod["metadata"].get("labels") or {}).get(REVISION_LABEL) == revision:
                continue
            if not _ready(pod):
                out.append(pod["metadata"]["name"])  # not serving anyway: replace it at once
            else:
                candidates.append(pod["metadata"]["name"])
        return out + candidates[:max(0, budget - unavailable)]

    def _create(self, pod_rt: ResourceType, ds: dict[str, Any], template: dict[str, Any], revision: str,
                node: str) -> None:
        meta = ds["metadata"]
        tmeta = template.get("metadata") or {}
        labels = dict(tmeta.get("labels") or {})
        labels[REVISION_LABEL] = revision
        generation = (meta.get("annotations") or {}).get(GENERATION_ANNOTATION)
        if generation:
            labels[GENERATION_LABEL] = str(generation)
        spec = daemon_pod_spec(template.get("spec") or {})
        spec["affinity"] = pinned_affinity(spec.get("affinity"), node)
        body: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{meta['name']}-{random_suffix()}", "namespace": meta.get("namespace", ""),
                         "labels": labels,
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": meta["name"],
                                              "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]},
            "spec": spec,
        }
        if tmeta.get("annotations"):
            body["metadata"]["annotations"] = dict(tmeta["annotations"])
        try:
            self.api.create(pod_rt, meta.get("namespace", ""), body, manager=MANAGER)
        except ApiError as exc:  # a namespace being deleted, or a refused template: retried on the next event
            log.debug("simulated daemonset controller: pod for %s on %s: %s", meta["name"], node, exc.message)

    def _delete(self, pod_rt: ResourceType, ns: str, name: str) -> None:
        try:
            self.api.delete(pod_rt, ns, name, {})
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _write_status(self, ds_rt: ResourceType, ns: str, name: str, revision: str) -> None:
        ds, nodes, by_node = self._state(ns, name)
        if ds is None:
            return
        desired = current = misscheduled = ready = updated = 0
        for node in nodes:
            run, _ = should_run(node, ds)
            pods = by_node.get(node["metadata"]["name"], [])
            if not run:
                misscheduled += 1 if pods else 0
                continue
            desired += 1
            if not pods:
                continue
            current += 1
            ready += 1 if _ready(pods[0]) else 0
            updated += 1 if (pods[0]["metadata"].get("labels") or {}).get(REVISION_LABEL) == revision else 0
        status: dict[str, Any] = {"currentNumberScheduled": current, "numberMisscheduled": misscheduled,
                                  "desiredNumberScheduled": desired, "numberReady": ready,
                                  "observedGeneration": ds["metadata"].get("generation", 1)}
        for key, value in (("updatedNumberScheduled", updated), ("numberAvailable", ready),
                           ("numberUnavailable", desired - ready)):
            if value:
                status[key] = value
        old = ds.get("status") or {}
        for key in ("collisionCount", "conditions"):
            if key in old:
                status[key] = old[key]
        if status == old:
            return
        ds["status"] = status
        self.api.replace(ds_rt, ns, name, ds, subresource="status", manager=MANAGER)
