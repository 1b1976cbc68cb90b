"""The simulated garbage collector: like Kubernetes', it deletes an object once every owner named
in its ownerReferences is gone (by uid). Deleting an owner cascades at once (api.delete); this
covers the other order, a dependent written after its owner was deleted (a controller acting on a
stale event), which a real cluster also cleans up shortly afterwards."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import Api
    from .store import Event, Store

# Kubernetes' collector runs asynchronously; so does this one, after a short pause.
COLLECT_DELAY_SECONDS = 0.05


class GarbageCollector:
    def __init__(self, api: Api, store: Store) -> None:
        self.api = api
        self.store = store
        self.collected = 0
        store.add_listener(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.type == "DELETED" or not event.obj.get("metadata", {}).get("ownerReferences"):
            return
        timer = threading.Timer(COLLECT_DELAY_SECONDS, self._collect, args=(event.key, event.obj))
        timer.daemon = True
        timer.start()

    def _served(self, ref: dict[str, Any]) -> bool:
        group, _, version = str(ref.get("apiVersion", "")).rpartition("/")
        return any(t.group == group and t.version == version and t.kind == ref.get("kind")
                   for t in self.api.registry.all())

    def _collect(self, key: Any, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        with self.store.txn():
            current = self.store.get(key, meta.get("namespace", ""), meta["name"])
            if current is None or current["metadata"].get("uid") != meta.get("uid"):
                return
            refs = current["metadata"].get("ownerReferences") or []
            owners = {r.get("uid") for r in refs}
            # Like Kubernetes', it only judges owners of kinds it can resolve (ReplicaSets and
            # DaemonSets are not simulated: their children are left alone).
            if not owners or not all(self._served(r) for r in refs):
                return
            live = {o["metadata"].get("uid") for _, o in self.store.all_objects()}
            if owners & live:
                return
            self.api.collect_orphan(key, current)
            self.collected += 1
