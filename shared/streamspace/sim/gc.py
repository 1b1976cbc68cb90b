"""The simulated garbage collector and namespace controller: asynchronous, on their own thread, writing
through the API like kube-controller-manager.

Checked against Kubernetes (docs/concepts/architecture/garbage-collection.md,
pkg/controller/garbagecollector/garbagecollector.go attemptToDeleteItem, pkg/controller/namespace/deletion):
- An owner reference names its owner by kind and name in the dependent's namespace (or cluster-scoped)
  and must match its uid; an owner in another namespace is treated as absent.
- A dependent whose owners are all absent is deleted (Background). One with a live owner keeps it and
  loses only the references to absent owners (or to owners deleted in the foreground).
- Foreground deletion: the owner keeps the `foregroundDeletion` finalizer while its dependents are
  deleted (those with dependents of their own in the foreground too); the finalizer goes once no
  dependent with `blockOwnerDeletion` is left, and with it the owner.
- Orphan deletion: the dependents lose their references to the owner, then the `orphan` finalizer goes.
- A Terminating namespace: everything in it is deleted; once it is empty the namespace controller
  removes its `kubernetes` finalizer and the namespace is gone. Objects with finalizers keep it
  Terminating (status conditions NamespaceContentRemaining / NamespaceFinalizersRemaining).
- Owner kinds the API server does not serve cannot be resolved; their dependents are left alone.
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
from typing import TYPE_CHECKING, Any

from .errors import ApiError
from .resources import ResourceType

if TYPE_CHECKING:
    from .api import Api
    from .store import Event, Store

log = logging.getLogger("streamspace.sim.gc")

NS_KEY = ("", "namespaces")
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
NAMESPACE_FINALIZER = "kubernetes"
Task = tuple[str, ...]


class GarbageCollector:
    def __init__(self, api: Api, store: Store) -> None:
        self.api = api
        self.store = store
        self.collected = 0
        self._queue: queue.Queue[Task | None] = queue.Queue()
        self._idle = threading.Condition()
        self._busy = 0
        self._thread = threading.Thread(target=self._run, name="streamspace-sim-gc", daemon=True)
        self._thread.start()
        store.add_listener(self._on_event)

    def stop(self) -> None:
        self._queue.put(None)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Until every change seen so far has been handled (for harness shutdown and benchmarks)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0 and self._queue.empty(), timeout)

    # ------------------------------------------------------------ events

    def _put(self, task: Task) -> None:
        with self._idle:
            self._busy += 1
        self._queue.put(task)

    def _on_event(self, event: Event) -> None:
        meta = event.obj.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        ns = str(meta.get("namespace") or "")
        if event.type == "DELETED":
            self._put(("dependents", uid))
            for ref in meta.get("ownerReferences") or []:
                self._put(("owner", str(ref.get("uid") or "")))  # an owner may be waiting for this one
            if ns:
                self._put(("namespace", ns))
            return
        if event.key == NS_KEY and meta.get("deletionTimestamp"):
            self._put(("namespace", str(meta["name"])))
        if meta.get("deletionTimestamp") and {FOREGROUND, ORPHAN} & set(meta.get("finalizers") or []):
            self._put(("owner", uid))
        if meta.get("ownerReferences"):
            self._put(("item", event.key[0], event.key[1], ns, str(meta["name"]), uid))

    def _run(self) -> None:
        while True:
            task = self._queue.get()
            if task is None:
                return
            try:
                self._handle(task)
            except ApiError as exc:
                # Lost a race with another writer: the write's own event brings the object back here.
                log.debug("simulated garbage collector: %s: %s", task, exc.message)
            except Exception:  # the collector must outlive any one object, as the real one does
                log.exception("simulated garbage collector: %s failed", task)
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def _handle(self, task: Task) -> None:
        kind = task[0]
        if kind == "item":
            with self.store.txn():
                current = self.store.get((task[1], task[2]), task[3], task[4])
            if current is not None and current["metadata"].get("uid") == task[5]:
                self._attempt_to_delete((task[1], task[2]), current)
        elif kind == "dependents":
            for key, dependent in self._dependents_of(task[1]):
                self._attempt_to_delete(key, dependent)
        elif kind == "owner":
            self._process_owner(task[1])
        elif kind == "namespace":
            self._process_namespace(task[1])

    # ------------------------------------------------------------ owners and dependents

    def _type_of(self, key: tuple[str, str]) -> ResourceType | None:
        return self.api.registry.for_store_key(key)

    def _dependents_of(self, uid: str) -> list[tuple[tuple[str, str], dict[str, Any]]]:
        with self.store.txn():
            return [(key, copy.deepcopy(obj)) for key, obj in self.store.all_objects()
                    if any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or [])]

    def _owner(self, dependent: dict[str, Any], ref: dict[str, Any]) -> tuple[bool, dict[str, Any] | None]:
        """(resolvable, the live owner or None when absent)."""
        group, _, version = str(ref.get("apiVersion", "")).rpartition("/")
        rt = next((t for t in self.api.registry.all()
                   if t.group == group and t.version == version and t.kind == ref.get("kind")), None)
        if rt is None:
            return False, None
        ns = str(dependent["metadata"].get("namespace") or "")
        if rt.namespaced and not ns:
            return False, None  # a cluster-scoped dependent cannot name a namespaced owner
        with self.store.txn():
            owner = self.store.get(rt.store_key, ns if rt.namespaced else "", str(ref.get("name", "")))
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return True, None
        return True, owner

    def _attempt_to_delete(self, key: tuple[str, str], item: dict[str, Any]) -> None:
        refs = item["metadata"].get("ownerReferences") or []
        solid, gone = [], []
        waiting = False
        for ref in refs:
            resolvable, owner = self._owner(item, ref)
            if not resolvable:
                return
            if owner is None:
                gone.append(ref)
            elif owner["metadata"].get("deletionTimestamp") and FOREGROUND in (owner["metadata"].get("finalizers")
                                                                                or []):
                gone.append(ref)
                waiting = True
            else:
                solid.append(ref)
        if not gone:
            return
        rt = self._type_of(key)
        if rt is None:
            return
        meta = item["metadata"]
        ns = str(meta.get("namespace") or "")
        if solid:
            kept = copy.deepcopy(item)
            kept["metadata"]["ownerReferences"] = solid
            kept["metadata"]["resourceVersion"] = meta.get("resourceVersion")
            self.api.replace(rt, ns, str(meta["name"]), kept, manager="generic-garbage-collector")
            return
        if meta.get("deletionTimestamp"):
            return
        policy = "Foreground" if waiting and self._dependents_of(str(meta.get("uid"))) else "Background"
        self.api.delete(rt, ns, str(meta["name"]), {"preconditions": {"uid": meta.get("uid")}},
                        propagation=policy)
        self.collected += 1

    def _process_owner(self, uid: str) -> None:
        with self.store.txn():
            found = next(((k, copy.deepcopy(o)) for k, o in self.store.all_objects()
                          if o["metadata"].get("uid") == uid), None)
        if found is None:
            for key, dependent in self._dependents_of(uid):
                self._attempt_to_delete(key, dependent)
            return
        key, owner = found
        meta = owner["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if not meta.get("deletionTimestamp"):
            return
        rt = self._type_of(key)
        if rt is None:
            return
        if ORPHAN in finalizers:
            for dep_key, dependent in self._dependents_of(uid):
                dep_rt = self._type_of(dep_key)
                if dep_rt is None:
                    continue
                freed = copy.deepcopy(dependent)
                remaining = [r for r in dependent["metadata"]["ownerReferences"] if r.get("uid") != uid]
                if remaining:
                    freed["metadata"]["ownerReferences"] = remaining
                else:
                    freed["metadata"].pop("ownerReferences", None)
                self.api.replace(dep_rt, str(dependent["metadata"].get("namespace") or ""),
                                 str(dependent["metadata"]["name"]), freed, manager="generic-garbage-collector")
            self._drop_finalizer(rt, owner, ORPHAN)
        elif FOREGROUND in finalizers:
            blocking = 0
            for dep_key, dependent in self._dependents_of(uid):
                if not dependent["metadata"].get("deletionTimestamp"):
                    self._attempt_to_delete(dep_key, dependent)
                ref = next(r for r in dependent["metadata"]["ownerReferences"] if r.get("uid") == uid)
                if ref.get("blockOwnerDeletion"):
                    blocking += 1
            if blocking == 0:
                self._drop_finalizer(rt, owner, FOREGROUND)

    def _drop_finalizer(self, rt: ResourceType, obj: dict[str, Any], finalizer: str) -> None:
        body = self.api.out(rt, obj)
        body["metadata"]["finalizers"] = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
        self.api.replace(rt, str(obj["metadata"].get("namespace") or ""), str(obj["metadata"]["name"]), body,
                         manager="generic-garbage-collector")

    # ------------------------------------------------------------ namespaces

    def _process_namespace(self, name: str) -> None:
        with self.store.txn():
            namespace = self.store.get(NS_KEY, "", name)
            if namespace is None or not namespace["metadata"].get("deletionTimestamp"):
                return
            namespace = copy.deepcopy(namespace)
            content = [(key, copy.deepcopy(obj)) for key, obj in self.store.all_objects()
                       if obj["metadata"].get("namespace") == name]
        for key, obj in content:
            rt = self._type_of(key)
            if rt is None or obj["metadata"].get("deletionTimestamp"):
                continue
            try:
                self.api.delete(rt, name, str(obj["metadata"]["name"]),
                                {"preconditions": {"uid": obj["metadata"].get("uid")}})
            except ApiError as exc:
                if exc.code not in (404, 409):
                    raise
        with self.store.txn():
            left = [obj for _, obj in self.store.all_objects() if obj["metadata"].get("namespace") == name]
        ns_rt = self._type_of(NS_KEY)
        if ns_rt is None:
            raise RuntimeError("invariant broken: ns_rt is None")
        if left:
            with_finalizers = sorted({f for o in left for f in o["metadata"].get("finalizers") or []})
            conditions = [{"type": "NamespaceContentRemaining", "status": "True", "reason": "SomeResourcesRemain",
                           "message": f"Some resources are remaining: {len(left)} objects"}]
            if with_finalizers:
                conditions.append({"type": "NamespaceFinalizersRemaining", "status": "True",
                                   "reason": "SomeFinalizersRemain",
                                   "message": "Some content in the namespace has finalizers remaining: "
                                              + ", ".join(with_finalizers)})
            status = {"phase": "Terminating", "conditions": conditions}
            if namespace.get("status") != status:
                body = self.api.out(ns_rt, namespace)
                body["status"] = status
                self.api.replace(ns_rt, "", name, body, subresource="status", manager="namespace-controller")
            return
        # Empty: the namespace controller finalizes (the namespaces/finalize subresource).
        body = self.api.out(ns_rt, namespace)
        body.setdefault("spec", {})["finalizers"] = [
            f for f in (namespace.get("spec") or {}).get("finalizers") or [] if f != NAMESPACE_FINALIZER]
        self.api.replace(ns_rt, "", name, body, manager="namespace-controller")
