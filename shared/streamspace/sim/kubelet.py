"""Simulated controllers and kubelet: Deployment -> ReplicaSets -> Pods -> Ready, with status written back
through the API.

Runs the workload controllers (`workloads.py`: Deployment and ReplicaSet, as kube-controller-manager),
the scheduler (`scheduler.py`) and the nodes' kubelets in one level-triggered loop. Pods are created as soon
as a ReplicaSet wants them (Pending, as a real cluster shows
them first), bound to a node that fits them (or left Pending with `PodScheduled=False`, retried when nodes
or pods change), and started `delay` seconds later on a node that exists: an image the node does not have
yet takes `pull_seconds` to pull (events Pulling, Pulled), one it has is "already present on machine"
(the node's `status.images` lists what it pulled, as a real node's does); the container then takes
`start_seconds` to start (events Created, Started) and the pod becomes Running and Ready, unless its
image "cannot be pulled". Status writes go through the normal
write path, so watchers see the same MODIFIED events a real cluster produces, and unchanged status is a
no-op (no event), which keeps the loop from feeding itself.

With every time 0 all of this runs synchronously in the thread that made the triggering write, before the HTTP
response is sent, which makes tests deterministic.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .api import Api, now, random_suffix
from .errors import ApiError
from .logs import LogStore
from .resources import Registry, ResourceType
from .scheduler import NODE_KEY, Scheduler
from .store import Event, Store
from .workloads import WorkloadControllers, record_event

log = logging.getLogger("streamspace.sim.kubelet")

# ("deploy" | "rs" | "pod" | "pulled" | "started" | "unbound" | "node" | "kill", namespace, name)
Task = tuple[str, str, str]
POD_KEY = ("", "pods")
SIMULATED_IMAGE_BYTES = 500 * 1024 * 1024  # what a node reports for each image it pulled


def default_image_fails(image: str) -> bool:
    return "invalid" in image or image == "does-not-exist"


def _unready_conditions(when: str, unready: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A bound pod's conditions while the `unready` containers are not ready."""
    names = " ".join(str(c.get("name")) for c in unready)
    why = {"reason": "ContainersNotReady", "message": f"containers with unready status: [{names}]"}
    return [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": when},
        {"type": "Initialized", "status": "True", "lastTransitionTime": when},
        {"type": "ContainersReady", "status": "False", "lastTransitionTime": when, **why},
        {"type": "Ready", "status": "False", "lastTransitionTime": when, **why},
    ]


def _node_images(node: dict[str, Any]) -> set[str]:
    """The images a node reports it has (status.images[].names)."""
    return {str(name) for image in (node.get("status") or {}).get("images") or [] for name in image.get("names") or []}


def _all_containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """Init containers, then containers: the kubelet pulls every one's image before the pod runs."""
    spec = pod.get("spec") or {}
    return [c for c in (spec.get("initContainers") or []) + (spec.get("containers") or []) if isinstance(c, dict)]


def _init_statuses(pod: dict[str, Any], when: str) -> dict[str, Any]:
    """Init containers that ran to completion (the simulated ones exit 0 at once), as status reports them."""
    inits = (pod.get("spec") or {}).get("initContainers") or []
    if not inits:
        return {}
    return {"initContainerStatuses": [
        {"name": c.get("name"), "image": str(c.get("image", "")), "imageID": f"sim://{c.get('image', '')}",
         "ready": True, "started": False, "restartCount": 0, "containerID": f"sim://{random_suffix(12)}",
         "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": when, "finishedAt": when}}}
        for c in inits]}


def _host_ip(node: dict[str, Any] | None) -> str:
    return next((a.get("address") for a in ((node or {}).get("status") or {}).get("addresses") or []
                 if a.get("type") == "InternalIP"), "10.0.0.10")


class Kubelet:
    def __init__(self, api: Api, store: Store, registry: Registry, delay: float = 0.0,
                 image_fails: Callable[[str], bool] | None = None, logs: LogStore | None = None,
                 scheduler: Scheduler | None = None, pull_seconds: float = 0.0, start_seconds: float = 0.0) -> None:
        self.api = api
        self.pull_seconds = max(0.0, float(pull_seconds))
        self.start_seconds = max(0.0, float(start_seconds))
        self.scheduler = scheduler if scheduler is not None else Scheduler(api, store)
        self.logs = logs if logs is not None else LogStore(store)
        self.store = store
        self.registry = registry
        self.workloads = WorkloadControllers(api, store, registry)
        self.delay = max(0.0, float(delay))
        # Anything that takes time runs on the kubelet's thread; with no time at all, synchronously.
        self.timed = self.delay > 0 or self.pull_seconds > 0 or self.start_seconds > 0
        self.image_fails = image_fails or default_image_fails
        self._lock = threading.RLock()
        self._local = threading.local()
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Task]] = []
        self._seq = itertools.count()
        self._stopped = False
        self._ip = itertools.count(2)
        self._thread: threading.Thread | None = None
        # Other simulated controllers run their tasks ("kind", namespace, name) on this queue too.
        self.handlers: dict[str, Callable[[str, str], None]] = {}
        store.add_listener(self._on_event)

    # ------------------------------------------------------------ scheduling

    def start(self) -> None:
        if self.timed and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="streamspace-sim-kubelet", daemon=True)
            self._thread.start()
        self.resync()

    def resync(self) -> None:
        """Look at everything once (objects restored from a journal were written while no kubelet ran)."""
        controllers = self.workloads.all_tasks()
        with self.store.txn():
            unstarted = [(o["metadata"].get("namespace", ""), o["metadata"]["name"])
                         for o in self.store.items(POD_KEY) if not (o.get("status") or {}).get("startTime")]
        for task in controllers:
            self._schedule(task, 0.0)
        for ns, name in unstarted:
            self._schedule(("pod", ns, name), self.delay)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _on_event(self, ev: Event) -> None:
        if self._stopped:
            return
        ns = ev.obj["metadata"].get("namespace", "")
        if ev.key == NODE_KEY and ev.type != "DELETED":
            # A node joined or changed (uncordoned, capacity, taints): pending pods may fit now, and
            # pods already bound to a node that had not registered can start.
            self._schedule(("unbound", "", ""), 0.0)
            if ev.type == "ADDED":
                self._schedule(("node", "", ev.obj["metadata"]["name"]), self.delay)
            return
        for task in self.workloads.tasks_for(ev):
            self._schedule(task, 0.0)
        if ev.key == POD_KEY:
            bound_now = (ev.obj.get("spec") or {}).get("nodeName") and not ((ev.prev or {}).get("spec") or {}).get(
                "nodeName")
            if ev.type == "ADDED" or (ev.type == "MODIFIED" and bound_now):
                self._schedule(("pod", ns, ev.obj["metadata"]["name"]), self.delay)
            if ev.type == "MODIFIED" and ev.obj["metadata"].get("deletionTimestamp") and not (
                    (ev.prev or {}).get("metadata") or {}).get("deletionTimestamp"):
                # Graceful deletion: the kubelet stops the containers (the simulated ones exit on SIGTERM
                # at once) and deletes the pod with grace period 0, which removes it.
                self._schedule(("kill", ns, ev.obj["metadata"]["name"]), self.delay)
            elif ev.type == "DELETED" and (ev.obj.get("spec") or {}).get("nodeName"):
                self._schedule(("unbound", "", ""), 0.0)  # capacity freed

    def enqueue(self, task: Task, delay: float) -> None:
        """Run `task` (a kind registered in `handlers`) after `delay` seconds, or at once when untimed."""
        self._schedule(task, delay)

    def _schedule(self, task: Task, delay: float) -> None:
        if not self.timed:
            pending: list[Task] | None = getattr(self._local, "pending", None)
            if pending is not None:
                if task not in pending:
                    pending.append(task)
                return
            self._local.pending = [task]
            try:
                with self._lock:
                    while self._local.pending:
                        self._run_task(self._local.pending.pop(0))
            finally:
                self._local.pending = None
            return
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), task))
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = (self._heap[0][0] - time.monotonic()) if self._heap else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, _, task = heapq.heappop(self._heap)
                # Later duplicates of a task that is due now are redundant: the loop is level-triggered.
                if task[0] in ("deploy", "rs", "unbound") or task[0] in self.handlers:
                    self._heap = [h for h in self._heap if h[2] != task or h[0] > time.monotonic()]
                    heapq.heapify(self._heap)
            with self._lock:
                self._run_task(task)

    def _run_task(self, task: Task) -> None:
        try:
            if task[0] in self.handlers:
                self.handlers[task[0]](task[1], task[2])
            elif task[0] == "deploy":
                self.workloads.sync_deployment(task[1], task[2])
            elif task[0] == "rs":
                self.workloads.sync_replicaset(task[1], task[2])
            elif task[0] == "unbound":
                self._retry_unbound()
            elif task[0] == "node":
                self._start_bound_to(task[2])
            elif task[0] == "kill":
                self._delete_pod(self._types()[1], task[1], task[2], grace=0)
            elif task[0] == "pulled":
                self._pulled(task[1], task[2])
            elif task[0] == "started":
                self._started(task[1], task[2])
            else:
                self._run_pod(task[1], task[2])
        except ApiError as exc:
            # Lost a race with a client write: the write's own event schedules another pass.
            log.debug("simulated kubelet: %s %s/%s: %s", task[0], task[1], task[2], exc.message)
            if exc.code == 409 and self.timed:
                self._schedule(task, 0.05)

    # ------------------------------------------------------------ reconcile

    def _types(self) -> tuple[ResourceType, ResourceType]:
        deploy = self.registry.get("apps", "v1", "deployments")
        pod = self.registry.get("", "v1", "pods")
        if deploy is None or pod is None:
            raise RuntimeError("invariant broken: deploy or pod is None")
        return deploy, pod

    def _delete_pod(self, pod_rt: ResourceType, ns: str, name: str, grace: int | None = None) -> None:
        try:
            self.api.delete(pod_rt, ns, name, {} if grace is None else {"gracePeriodSeconds": grace})
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _retry_unbound(self) -> None:
        with self.store.txn():
            unbound = [(o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in self.store.items(POD_KEY)
                       if not (o.get("spec") or {}).get("nodeName") and not o["metadata"].get("deletionTimestamp")]
        for ns, name in unbound:
            if self.scheduler.schedule(ns, name) is not None:
                self._schedule(("pod", ns, name), self.delay)

    def _start_bound_to(self, node: str) -> None:
        with self.store.txn():
            waiting = [(o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in self.store.items(POD_KEY)
                       if (o.get("spec") or {}).get("nodeName") == node
                       and not (o.get("status") or {}).get("startTime")]
        for ns, name in waiting:
            self._run_pod(ns, name)

    def _run_pod(self, ns: str, name: str) -> None:
        """Bind the pod (if the scheduler has not) and pull what its node lacks (or fail the pull)."""
        _, pod_rt = self._types()
        with self.store.txn():
            pod = self.store.get(POD_KEY, ns, name)
            if pod is None or pod["metadata"].get("deletionTimestamp"):
                return
            bound_here = False
            if not (pod.get("spec") or {}).get("nodeName"):
                if self.scheduler.schedule(ns, name) is None:
                    return  # Pending until a node fits; retried when nodes or pods change
                pod = self.store.get(POD_KEY, ns, name)
                if pod is None:
                    return
                bound_here = True
            node_name = str(pod["spec"]["nodeName"])
            node = self.store.get(NODE_KEY, "", node_name)
            pod = copy.deepcopy(pod)
        if bound_here:
            self._event(pod, "Scheduled", f"Successfully assigned {ns}/{name} to {node_name}", "default-scheduler")
        if node is None:
            return  # bound to a node that has not registered: no kubelet runs it (yet)
        status = pod.get("status") or {}
        if status.get("startTime") or status.get("phase") == "Pending" and any(
                ((c.get("state") or {}).get("waiting") or {}).get("reason") == "ContainerCreating"
                for c in status.get("containerStatuses") or []):
            return  # already started (the simulated containers never crash), or already pulling
        containers = _all_containers(pod)
        failing = [c for c in containers if self.image_fails(str(c.get("image", "")))]
        if failing:
            self._fail_pull(pod_rt, pod, node, failing)
            return
        present = _node_images(node)
        missing = [c for c in containers if str(c.get("image", "")) not in present]
        if self.pull_seconds > 0 or self.start_seconds > 0:
            self._write_status(pod_rt, pod, self._pending_status(pod, node, "ContainerCreating"))
        if missing and self.pull_seconds > 0:
            for c in missing:
                self._event(pod, "Pulling", f'Pulling image "{c.get("image")}"', container=str(c.get("name")))
            self._schedule(("pulled", ns, name), self.pull_seconds)
        else:
            self._pulled(ns, name)

    def _pulled(self, ns: str, name: str) -> None:
        """Every image is on the node: create the containers; they are started `start_seconds` later."""
        pod = self._live_pod(ns, name)
        if pod is None or (pod.get("status") or {}).get("startTime"):
            return
        node_name = str((pod.get("spec") or {}).get("nodeName") or "")
        with self.store.txn():
            node = self.store.get(NODE_KEY, "", node_name)
        if node is None:
            return
        present = _node_images(node)
        pulled = []
        for c in _all_containers(pod):
            image = str(c.get("image", ""))
            if image in present:
                self._event(pod, "Pulled", f'Container image "{image}" already present on machine',
                            container=str(c.get("name")))
            else:
                pulled.append(image)
                present.add(image)
                self._event(pod, "Pulled", f'Successfully pulled image "{image}" in {self.pull_seconds:g}s',
                            container=str(c.get("name")))
            self._event(pod, "Created", f"Created container: {c.get('name')}", container=str(c.get("name")))
        if pulled:
            self._record_images(node_name, pulled)
        if self.start_seconds > 0:
            self._schedule(("started", ns, name), self.start_seconds)
        else:
            self._started(ns, name)

    def _started(self, ns: str, name: str) -> None:
        _, pod_rt = self._types()
        pod = self._live_pod(ns, name)
        if pod is None or (pod.get("status") or {}).get("startTime"):
            return
        with self.store.txn():
            node = self.store.get(NODE_KEY, "", str((pod.get("spec") or {}).get("nodeName") or ""))
        containers = (pod.get("spec") or {}).get("containers") or []
        started = now()
        ip = f"10.244.0.{next(self._ip) % 250 + 2}"
        status = pod.get("status") or {}
        scheduled = next((c.get("lastTransitionTime") for c in status.get("conditions") or []
                          if c.get("type") == "PodScheduled" and c.get("status") == "True"), None) or started
        statuses = [{"name": c.get("name"), "image": str(c.get("image", "")), "imageID": f"sim://{c.get('image', '')}",
                     "ready": True, "started": True, "restartCount": 0, "state": {"running": {"startedAt": started}},
                     "containerID": f"sim://{random_suffix(12)}"} for c in containers]
        new_status = {
            "phase": "Running",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": scheduled},
                {"type": "Initialized", "status": "True", "lastTransitionTime": scheduled},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": started},
                {"type": "Ready", "status": "True", "lastTransitionTime": started},
            ],
            "hostIP": _host_ip(node), "podIP": ip, "podIPs": [{"ip": ip}], "startTime": started,
            "containerStatuses": statuses, "qosClass": status.get("qosClass", "BestEffort"),
            **_init_statuses(pod, started),
        }
        for c in containers:  # the containers start, then the pod reports Ready
            self._event(pod, "Started", f"Started container {c.get('name')}", container=str(c.get("name")))
        self._write_status(pod_rt, pod, new_status)
        for c in containers:
            self.logs.write(ns, name, str(c.get("name")), f"{started} simulated kubelet: started container "
                            f"{c.get('name')} (image {c.get('image')})")

    def _record_images(self, node_name: str, images: list[str]) -> None:
        """Add pulled images to the node's status.images, as the kubelet reports them."""
        node_rt = self.registry.get("", "v1", "nodes")
        if node_rt is None:
            raise RuntimeError("invariant broken: node_rt is None")
        with self.store.txn():
            node = self.store.get(NODE_KEY, "", node_name)
            if node is None:
                return
            body = copy.deepcopy(node)
            listed = list((body.get("status") or {}).get("images") or [])
            known = _node_images(body)
            listed.extend({"names": [image], "sizeBytes": SIMULATED_IMAGE_BYTES} for image in images
                          if image not in known)
            body.setdefault("status", {})["images"] = listed
            self.api.replace(node_rt, "", node_name, body, subresource="status", manager="kubelet")

    def _live_pod(self, ns: str, name: str) -> dict[str, Any] | None:
        with self.store.txn():
            pod = self.store.get(POD_KEY, ns, name)
            if pod is None or pod["metadata"].get("deletionTimestamp"):
                return None
            return copy.deepcopy(pod)

    def _pending_status(self, pod: dict[str, Any], node: dict[str, Any], reason: str) -> dict[str, Any]:
        """Bound to its node, containers waiting (ContainerCreating while images are pulled)."""
        containers = (pod.get("spec") or {}).get("containers") or []
        scheduled = next((c.get("lastTransitionTime") for c in (pod.get("status") or {}).get("conditions") or []
                          if c.get("type") == "PodScheduled" and c.get("status") == "True"), None) or now()
        return {
            "phase": "Pending",
            "conditions": _unready_conditions(scheduled, containers),
            "hostIP": _host_ip(node),
            "containerStatuses": [{"name": c.get("name"), "image": str(c.get("image", "")), "imageID": "",
                                   "ready": False, "started": False, "restartCount": 0,
                                   "state": {"waiting": {"reason": reason}}} for c in containers],
            "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort"),
        }

    def _fail_pull(self, pod_rt: ResourceType, pod: dict[str, Any], node: dict[str, Any],
                   failing: list[dict[str, Any]]) -> None:
        started = now()
        containers = (pod.get("spec") or {}).get("containers") or []
        inits = (pod.get("spec") or {}).get("initContainers") or []
        init_failing = [c for c in inits if c in failing]
        init_statuses = []
        for c in inits:  # an init container's pull failed: the pod never gets past initialisation
            image = str(c.get("image", ""))
            if c in init_failing:
                self._event(pod, "Failed", f'Failed to pull image "{image}": simulated registry: not found',
                            container=str(c.get("name")), kind="Warning")
            init_statuses.append({"name": c.get("name"), "image": image, "imageID": "", "ready": False,
                                  "started": False, "restartCount": 0, "state": {"waiting": {
                                      "reason": "ErrImagePull" if c in init_failing else "PodInitializing"}}})
        statuses = []
        for c in containers:
            image = str(c.get("image", ""))
            if init_failing:
                state: dict[str, Any] = {"waiting": {"reason": "PodInitializing"}}
            elif c in failing:
                state = {"waiting": {
                    "reason": "ErrImagePull",
                    "message": f'failed to pull and unpack image "{image}": simulated registry: not found'}}
                self._event(pod, "Failed", f'Failed to pull image "{image}": simulated registry: not found',
                            container=str(c.get("name")), kind="Warning")
            else:
                state = {"running": {"startedAt": started}}
            running = "running" in state
            statuses.append({"name": c.get("name"), "image": image, "imageID": f"sim://{image}" if running else "",
                             "ready": running, "started": running, "restartCount": 0, "state": state,
                             **({"containerID": f"sim://{random_suffix(12)}"} if running else {})})
        ip = f"10.244.0.{next(self._ip) % 250 + 2}"
        new_status = {
            "phase": "Pending",
            "conditions": _unready_conditions(started, containers if init_failing else failing),
            "hostIP": _host_ip(node), "podIP": ip, "podIPs": [{"ip": ip}], "startTime": started,
            "containerStatuses": statuses, "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort"),
            **({"initContainerStatuses": init_statuses} if init_statuses else {}),
        }
        self._write_status(pod_rt, pod, new_status)

    def _write_status(self, pod_rt: ResourceType, pod: dict[str, Any], status: dict[str, Any]) -> None:
        body = copy.deepcopy(pod)
        body["status"] = status
        meta = pod["metadata"]
        self.api.replace(pod_rt, meta.get("namespace", ""), meta["name"], body, subresource="status",
                         manager="kubelet")

    def _event(self, pod: dict[str, Any], reason: str, message: str, component: str = "kubelet", *,
               container: str | None = None, kind: str = "Normal") -> None:
        """A core/v1 Event about the pod, as the scheduler and kubelet record them."""
        node = str((pod.get("spec") or {}).get("nodeName") or "") if component == "kubelet" else ""
        record_event(self.api, self.registry, pod, reason, message, component=component, kind=kind, host=node,
                     field_path=f"spec.containers{{{container}}}" if container else None)
