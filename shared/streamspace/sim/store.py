"""Object storage: one lock, one global resourceVersion counter, a bounded watch-event history.

Watchers get their own queue, fed under the lock so a resume (replay from history, then live events)
can neither miss nor duplicate an event. In-process listeners (the simulated kubelet) are called after
the lock is released so they may write back through the API without deadlocking.

With a journal (`open_journal`), every change is appended to a JSON-lines file as it is made and the
objects are read back from it on the next start, like etcd behind a real API server: resourceVersions
keep increasing across restarts and the watch history starts empty (older resourceVersions get 410,
as after an etcd compaction).
"""

from __future__ import annotations

import collections
import copy
import json
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("streamspace.sim")

StoreKey = tuple[str, str]  # (group, plural)
ObjKey = tuple[str, str]  # (namespace or "", name)


@dataclass
class Event:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    key: StoreKey
    obj: dict[str, Any]
    prev: dict[str, Any] | None = None


@dataclass(eq=False)
class Subscription:
    key: StoreKey
    namespace: str | None
    queue: queue.Queue[Event | None] = field(default_factory=queue.Queue)


class TooOld(Exception):
    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


class Store:
    def __init__(self, history_size: int = 10000) -> None:
        self.lock = threading.RLock()
        self._rv = 0
        self._objects: dict[StoreKey, dict[ObjKey, dict[str, Any]]] = collections.defaultdict(dict)
        self._history: collections.deque[Event] = collections.deque(maxlen=history_size)
        # Events at or below this RV may have been dropped from history.
        self._floor = 0
        self._subs: list[Subscription] = []
        self._listeners: list[Callable[[Event], None]] = []
        self._local = threading.local()
        self._journal: IO[str] | None = None

    # ------------------------------------------------------------ persistence

    def open_journal(self, path: str | os.PathLike[str]) -> int:
        """Load the objects journalled at `path` (if any), compact the file to one line per live object
        and append every later change to it. Returns how many objects were loaded."""
        target = Path(path)
        with self.lock:
            if self._journal is not None:
                raise RuntimeError("the store already has a journal")
            if target.exists():
                self._replay(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            compacted = target.with_name(target.name + ".tmp")
            with compacted.open("w", encoding="utf-8") as out:
                out.write(json.dumps({"rv": self._rv}) + "\n")
                for key, obj in self.all_objects():
                    out.write(json.dumps({"rv": int(obj["metadata"]["resourceVersion"]), "type": "ADDED",
                                          "key": list(key), "obj": obj}) + "\n")
            os.replace(compacted, target)
            self._journal = target.open("a", encoding="utf-8")
            self._floor = self._rv  # the history starts here: older resourceVersions are "too old"
            return sum(len(objs) for objs in self._objects.values())

    def _replay(self, path: Path) -> None:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                try:
                    record = json.loads(line)
                    self._rv = max(self._rv, int(record["rv"]))
                    if "key" not in record:
                        continue
                    key = (str(record["key"][0]), str(record["key"][1]))
                    meta = record["obj"]["metadata"]
                    ident = (meta.get("namespace", ""), meta["name"])
                except (ValueError, KeyError, TypeError, IndexError):
                    # A line cut short by a crash mid-write: what it described never completed.
                    log.warning("simulated cluster journal %s: line %d unreadable, ignored", path, number)
                    continue
                if record.get("type") == "DELETED":
                    self._objects[key].pop(ident, None)
                else:
                    self._objects[key][ident] = record["obj"]

    def close_journal(self) -> None:
        with self.lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None

    def _journal_event(self, ev: Event) -> None:
        if self._journal is not None:
            self._journal.write(json.dumps({"rv": ev.rv, "type": ev.type, "key": list(ev.key), "obj": ev.obj}) + "\n")
            self._journal.flush()

    # ------------------------------------------------------------ transactions

    @contextmanager
    def txn(self) -> Iterator[None]:
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            self._local.pending = []
        self.lock.acquire()
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            self.lock.release()
        if depth == 0:
            pending: list[Event] = self._local.pending
            self._local.pending = []
            for ev in pending:
                for listener in list(self._listeners):
                    listener(ev)

    def add_listener(self, fn: Callable[[Event], None]) -> None:
        self._listeners.append(fn)

    # ------------------------------------------------------------ resourceVersion

    @property
    def current_rv(self) -> int:
        with self.lock:
            return self._rv

    def next_rv(self) -> int:
        with self.lock:
            self._rv += 1
            return self._rv

    # ------------------------------------------------------------ objects (callers hold txn())

    def get(self, key: StoreKey, ns: str, name: str) -> dict[str, Any] | None:
        """The stored object itself: callers must not mutate it and must copy before returning it."""
        return self._objects[key].get((ns, name))

    def items(self, key: StoreKey, ns: str | None = None) -> list[dict[str, Any]]:
        objs = self._objects[key]
        keys = sorted(k for k in objs if ns is None or k[0] == ns)
        return [objs[k] for k in keys]

    def all_objects(self) -> Iterator[tuple[StoreKey, dict[str, Any]]]:
        for key, objs in list(self._objects.items()):
            for obj in list(objs.values()):
                yield key, obj

    def put(self, key: StoreKey, obj: dict[str, Any], event_type: str) -> dict[str, Any]:
        """Store a copy of obj with a fresh resourceVersion; returns the stored copy."""
        meta = obj["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        prev = self._objects[key].get((ns, name))
        rv = self.next_rv()
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = str(rv)
        self._objects[key][(ns, name)] = stored
        self._emit(Event(rv, event_type, key, copy.deepcopy(stored), prev))
        return stored

    def remove(self, key: StoreKey, ns: str, name: str) -> dict[str, Any] | None:
        obj = self._objects[key].pop((ns, name), None)
        if obj is None:
            return None
        rv = self.next_rv()
        last = copy.deepcopy(obj)
        last["metadata"]["resourceVersion"] = str(rv)
        self._emit(Event(rv, "DELETED", key, last, obj))
        return last

    def drop_kind(self, key: StoreKey) -> list[dict[str, Any]]:
        gone = [self.remove(key, ns, name) for (ns, name) in list(self._objects[key])]
        self._objects.pop(key, None)
        return [g for g in gone if g is not None]

    def _emit(self, ev: Event) -> None:
        self._journal_event(ev)
        if len(self._history) == self._history.maxlen:
            self._floor = self._history[0].rv
        self._history.append(ev)
        for sub in self._subs:
            if sub.key == ev.key and (sub.namespace is None or sub.namespace == ev.obj["metadata"].get("namespace")):
                sub.queue.put(ev)
        pending = getattr(self._local, "pending", None)
        if pending is not None:
            pending.append(ev)

    def last_change(self, key: StoreKey, namespace: str | None = None,
                    matches: Callable[[dict[str, Any]], bool] = lambda obj: True) -> int:
        """The resourceVersion of the newest change to matching objects of a kind (what a watcher
        of them has to have seen to be up to date); the history's floor when none is remembered."""
        with self.lock:
            for ev in reversed(self._history):
                if ev.key != key:
                    continue
                if namespace is not None and ev.obj["metadata"].get("namespace") != namespace:
                    continue
                if matches(ev.obj) or (ev.prev is not None and matches(ev.prev)):
                    return ev.rv
            return self._floor

    def compact(self, to_rv: int | None = None) -> int:
        """Forget the history up to `to_rv` (default: now), as the API server's periodic etcd compaction
        does: older resourceVersions can no longer be watched from or continued at. Returns the floor."""
        with self.lock:
            target = self._rv if to_rv is None else min(int(to_rv), self._rv)
            while self._history and self._history[0].rv <= target:
                self._history.popleft()
            self._floor = max(self._floor, target)
            return self._floor

    def snapshot(self, key: StoreKey, ns: str | None, rv: int) -> list[dict[str, Any]]:
        """The objects of a kind as they were at `rv` (what etcd serves a continued list from), rebuilt by
        undoing the remembered changes made since; TooOld when the history no longer reaches back."""
        with self.lock:
            if rv < self._floor:
                raise TooOld(rv, self._floor + 1)
            objs = dict(self._objects[key])
            for ev in reversed(self._history):
                if ev.rv <= rv:
                    break
                if ev.key != key:
                    continue
                meta = ev.obj["metadata"]
                ident = (meta.get("namespace", ""), meta["name"])
                if ev.type == "ADDED":
                    objs.pop(ident, None)
                elif ev.prev is not None:
                    objs[ident] = ev.prev
            return [copy.deepcopy(objs[k]) for k in sorted(objs) if ns is None or k[0] == ns]

    # ------------------------------------------------------------ watch

    def subscribe(
        self, key: StoreKey, namespace: str | None, since: int | None
    ) -> tuple[Subscription, list[Event], list[dict[str, Any]]]:
        """Register a watcher; returns it with either history to replay (since given) or a snapshot."""
        with self.lock:
            sub = Subscription(key, namespace)
            replay: list[Event] = []
            snapshot: list[dict[str, Any]] = []
            if since is None:
                snapshot = [copy.deepcopy(o) for o in self.items(key, namespace)]
            else:
                if since < self._floor:
                    raise TooOld(since, self._floor + 1)
                replay = [
                    ev for ev in self._history
                    if ev.rv > since and ev.key == key
                    and (namespace is None or ev.obj["metadata"].get("namespace") == namespace)
                ]
            self._subs.append(sub)
            return sub, replay, snapshot

    def unsubscribe(self, sub: Subscription) -> None:
        with self.lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def close_all_watches(self) -> None:
        with self.lock:
            for sub in self._subs:
                sub.queue.put(None)
