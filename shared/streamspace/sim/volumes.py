"""Simulated volume binding: StorageClasses, a dynamic provisioner and the PersistentVolume controller.

As a kind cluster has it by default: the StorageClass `standard` (the default class) provisioned by
`rancher.io/local-path` with `volumeBindingMode: WaitForFirstConsumer`. A claim stays `Pending` until it is
bound: with `Immediate` a volume is provisioned at once; with `WaitForFirstConsumer` the claim waits
(event WaitForFirstConsumer) until the scheduler picks a node for a pod that uses it (the
`volume.kubernetes.io/selected-node` annotation), then the volume is made on that node and carries its node
affinity, which the scheduler honours for every later pod of the claim. The local-path provisioner only
gives ReadWriteOnce volumes (its Provision answers "Only support ReadWriteOnce access mode"): any other access
mode leaves the claim Pending with a ProvisioningFailed Warning event, as on kind. A class whose provisioner
the simulation does not run leaves its claims Pending with an ExternalProvisioning event. Deleting a claim
deletes its dynamically provisioned volume (reclaimPolicy Delete) or releases it (Retain).

Not modelled: static PersistentVolumes matched to claims by the binder, volume expansion, snapshots,
CSI drivers, the provisioner's re-scheduling after a failure (the selected node stays).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import field
from typing import TYPE_CHECKING, Any

from streamspace.records import record

from .errors import ApiError
from .workloads import record_event

if TYPE_CHECKING:
    from .api import Api
    from .kubelet import Kubelet
    from .resources import Registry, ResourceType
    from .store import Event, Store

log = logging.getLogger("streamspace.sim.volumes")

SC_KEY = ("storage.k8s.io", "storageclasses")
PV_KEY = ("", "persistentvolumes")
PVC_KEY = ("", "persistentvolumeclaims")
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
HOSTNAME_LABEL = "kubernetes.io/hostname"
CONTROLLER = "persistentvolume-controller"


@record
class Provisioner:
    """What a simulated dynamic provisioner can make."""
    access_modes: frozenset[str]
    refusal: str  # its error when asked for another access mode
    local: bool  # volumes live on one node (node affinity)


PROVISIONERS: dict[str, Provisioner] = {
    # rancher/local-path-provisioner's Provision (kind's default class).
    "rancher.io/local-path": Provisioner(frozenset({"ReadWriteOnce"}), "Only support ReadWriteOnce access mode",
                                         local=True),
    # A network file system (NFS, CephFS, EFS...): any access mode, usable from every node.
    "sim.stream.space/shared": Provisioner(
        frozenset({"ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"}), "", local=False),
}


@record
class StorageClassSpec:
    name: str = "standard"
    provisioner: str = "rancher.io/local-path"
    binding_mode: str = "WaitForFirstConsumer"
    default: bool = True
    reclaim_policy: str = "Delete"
    parameters: dict[str, str] = field(default_factory=dict)

    def as_object(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name}
        if self.default:
            meta["annotations"] = {DEFAULT_CLASS: "true"}
        return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": meta,
                "provisioner": self.provisioner, "reclaimPolicy": self.reclaim_policy,
                "volumeBindingMode": self.binding_mode, **({"parameters": self.parameters} if self.parameters else {})}


KIND_DEFAULT_CLASSES = (StorageClassSpec(),)


def default_class(store: Store) -> str | None:
    """The default StorageClass (the newest if several are marked, as the DefaultStorageClass admission
    plugin picks), or None."""
    with store.txn():
        marked = [sc for sc in store.items(SC_KEY)
                  if (sc["metadata"].get("annotations") or {}).get(DEFAULT_CLASS) == "true"]
    marked.sort(key=lambda sc: (str(sc["metadata"].get("creationTimestamp") or ""), sc["metadata"]["name"]))
    return str(marked[-1]["metadata"]["name"]) if marked else None


def claim_names(pod: dict[str, Any]) -> list[str]:
    return [str(v["persistentVolumeClaim"].get("claimName")) for v in (pod.get("spec") or {}).get("volumes") or []
            if isinstance(v, dict) and isinstance(v.get("persistentVolumeClaim"), dict)]


def binding_mode(store: Store, claim: dict[str, Any]) -> str:
    with store.txn():
        sc = store.get(SC_KEY, "", str((claim.get("spec") or {}).get("storageClassName") or ""))
    return str((sc or {}).get("volumeBindingMode") or "Immediate")


class VolumeController:
    """The PersistentVolume controller and the simulated provisioners, on the kubelet's task queue (tasks
    "claim" and "reclaim"), so they are synchronous with every time at 0, like the other controllers."""

    def __init__(self, api: Api, store: Store, registry: Registry, kubelet: Kubelet) -> None:
        self.api = api
        self.store = store
        self.registry = registry
        self.kubelet = kubelet
        kubelet.handlers["claim"] = self.sync_claim
        kubelet.handlers["reclaim"] = lambda _ns, uid: self.reclaim(uid)
        store.add_listener(self._on_event)
        api.admission.append(self.admit)

    def ensure_classes(self, classes: tuple[StorageClassSpec, ...] | list[StorageClassSpec]) -> None:
        """Create the configured StorageClasses (a restored cluster keeps the ones it has)."""
        rt = self._type("storage.k8s.io", "storageclasses")
        for spec in classes:
            with self.store.txn():
                if self.store.get(SC_KEY, "", spec.name) is None:
                    self.api.create(rt, "", spec.as_object(), manager="kind")

    def admit(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        """The DefaultStorageClass admission plugin: a new claim that names no class gets the default one
        (an explicit "" means no class and stays)."""
        spec = obj.get("spec")
        if rt.store_key == PVC_KEY and isinstance(spec, dict) and spec.get("storageClassName") is None:
            name = default_class(self.store)
            if name is not None:
                spec["storageClassName"] = name

    def resync(self) -> None:
        """Look at every claim once (claims restored from a journal)."""
        with self.store.txn():
            claims = [(c["metadata"].get("namespace", ""), str(c["metadata"]["name"]))
                      for c in self.store.items(PVC_KEY)]
        for ns, name in claims:
            self.kubelet.enqueue(("claim", ns, name), 0.0)

    def _on_event(self, ev: Event) -> None:
        meta = ev.obj["metadata"]
        if ev.key == PVC_KEY:
            if ev.type == "DELETED":
                self.kubelet.enqueue(("reclaim", meta.get("namespace", ""), str(meta.get("uid") or "")), 0.0)
                return
            self.kubelet.enqueue(("claim", meta.get("namespace", ""), str(meta["name"])), 0.0)
            if (ev.obj.get("status") or {}).get("phase") == "Bound":
                self.kubelet.enqueue(("unbound", "", ""), 0.0)  # pods waiting for the claim can bind now
        elif ev.key == SC_KEY and ev.type != "DELETED":
            with self.store.txn():
                waiting = [(c["metadata"].get("namespace", ""), str(c["metadata"]["name"]))
                           for c in self.store.items(PVC_KEY) if (c.get("status") or {}).get("phase") == "Pending"]
            for ns, name in waiting:
                self.kubelet.enqueue(("claim", ns, name), 0.0)
        elif ev.key == ("", "events") and ev.type == "ADDED" and ev.obj.get("reason") == "ProvisioningFailed":
            self.kubelet.enqueue(("unbound", "", ""), 0.0)  # the scheduler says why the claim's pods wait

    def _type(self, group: str, plural: str) -> ResourceType:
        rt = self.registry.get(group, "v1", plural)
        if rt is None:
            raise RuntimeError("invariant broken: rt is None")
        return rt

    def _event_once(self, claim: dict[str, Any], reason: str, message: str, component: str,
                    kind: str = "Normal") -> None:
        """Record an event about the claim unless it already says exactly this (the recorder counts repeats)."""
        meta = claim["metadata"]
        with self.store.txn():
            said = any(e.get("reason") == reason and e.get("message") == message
                       and (e.get("involvedObject") or {}).get("uid") == meta.get("uid")
                       for e in self.store.items(("", "events"), meta.get("namespace", "")))
        if not said:
            record_event(self.api, self.registry, claim, reason, message, component=component, kind=kind)

    def sync_claim(self, ns: str, name: str) -> None:
        with self.store.txn():
            claim = self.store.get(PVC_KEY, ns, name)
            if claim is None or claim["metadata"].get("deletionTimestamp"):
                return
            claim = copy.deepcopy(claim)
            if (claim.get("status") or {}).get("phase") == "Bound":
                return
            spec = claim.get("spec") or {}
            class_name = str(spec.get("storageClassName") or "")
            sc = copy.deepcopy(self.store.get(SC_KEY, "", class_name)) if class_name else None
        if not class_name:
            self._event_once(claim, "FailedBinding", "no persistent volumes available for this claim and no "
                             "storage class is set", CONTROLLER, "Warning")
            return
        if sc is None:
            self._event_once(claim, "ProvisioningFailed", f'storageclass.storage.k8s.io "{class_name}" not found',
                             CONTROLLER, "Warning")
            return
        node = (claim["metadata"].get("annotations") or {}).get(SELECTED_NODE)
        if sc.get("volumeBindingMode") == "WaitForFirstConsumer" and not node:
            self._event_once(claim, "WaitForFirstConsumer", "waiting for first consumer to be created before binding",
                             CONTROLLER)
            return
        provisioner_name = str(sc.get("provisioner") or "")
        provisioner = PROVISIONERS.get(provisioner_name)
        if provisioner is None:
            self._event_once(claim, "ExternalProvisioning", "Waiting for a volume to be created either by the "
                             f"external provisioner '{provisioner_name}' or manually by the system administrator. "
                             "If volume creation is delayed, please verify that the provisioner is running and "
                             "correctly registered.", CONTROLLER)
            return
        modes = [str(m) for m in spec.get("accessModes") or []]
        if any(m not in provisioner.access_modes for m in modes):
            self._event_once(claim, "ProvisioningFailed", f'failed to provision volume with StorageClass '
                             f'"{class_name}": {provisioner.refusal}', provisioner_name, "Warning")
            return
        self._provision(claim, sc, provisioner, node)

    def _provision(self, claim: dict[str, Any], sc: dict[str, Any], provisioner: Provisioner,
                   node: str | None) -> None:
        meta = claim["metadata"]
        ns = meta.get("namespace", "")
        spec = claim.get("spec") or {}
        volume_name = f"pvc-{meta['uid']}"
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        pv: dict[str, Any] = {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": volume_name, "annotations": {"pv.kubernetes.io/provisioned-by": sc["provisioner"]}},
            "spec": {
                "capacity": {"storage": storage}, "accessModes": list(spec.get("accessModes") or []),
                "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy", "Delete"),
                "storageClassName": sc["metadata"]["name"], "volumeMode": spec.get("volumeMode", "Filesystem"),
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns,
                             "name": meta["name"], "uid": meta["uid"], "resourceVersion": meta.get("resourceVersion")},
                "hostPath": {"path": f"/var/local-path-provisioner/{volume_name}_{ns}_{meta['name']}",
                             "type": "DirectoryOrCreate"},
            },
        }
        if provisioner.local and node:
            pv["spec"]["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": HOSTNAME_LABEL, "operator": "In", "values": [node]}]}]}}
        pv_rt = self._type("", "persistentvolumes")
        try:
            created = self.api.create(pv_rt, "", pv, manager=sc["provisioner"])
        except ApiError as exc:
            if exc.code != 409:
                raise
            created = self.api.get(pv_rt, "", volume_name)
        else:
            record_event(self.api, self.registry, claim, "ProvisioningSucceeded",
                         f"Successfully provisioned volume {volume_name}", component=str(sc["provisioner"]))
        created["status"] = {"phase": "Bound"}
        self.api.replace(pv_rt, "", volume_name, created, subresource="status", manager=CONTROLLER)
        pvc_rt = self._type("", "persistentvolumeclaims")
        bound = copy.deepcopy(claim)
        bound["spec"]["volumeName"] = volume_name
        bound["metadata"].setdefault("annotations", {}).update(
            {"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes",
             "volume.kubernetes.io/storage-provisioner": str(sc["provisioner"])})
        written = self.api.replace(pvc_rt, ns, meta["name"], bound, manager=CONTROLLER)
        written["status"] = {"phase": "Bound", "accessModes": list(spec.get("accessModes") or []),
                             "capacity": {"storage": storage}}
        self.api.replace(pvc_rt, ns, meta["name"], written, subresource="status", manager=CONTROLLER)

    def reclaim(self, claim_uid: str) -> None:
        """The claim is gone: delete its volume (reclaimPolicy Delete) or mark it Released (Retain)."""
        pv_rt = self._type("", "persistentvolumes")
        with self.store.txn():
            volumes = [copy.deepcopy(pv) for pv in self.store.items(PV_KEY)
                       if ((pv.get("spec") or {}).get("claimRef") or {}).get("uid") == claim_uid]
        for pv in volumes:
            try:
                if (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy", "Delete") == "Delete":
                    self.api.delete(pv_rt, "", pv["metadata"]["name"], {})
                else:
                    pv["status"] = {"phase": "Released"}
                    self.api.replace(pv_rt, "", pv["metadata"]["name"], pv, subresource="status",
                                     manager=CONTROLLER)
            except ApiError as exc:
                if exc.code != 404:
                    raise
