"""The local stand-in for Knative Eventing: ApiServerSource, PingSource, Broker and Triggers.

- Watches Sessions, Templates, StreamSpace-managed Deployments and the image-puller DaemonSets and
  sends each change as the CloudEvent an ApiServerSource (Resource mode) would send.
- Runs the PingSource schedules from `knative/eventing/pingsources.yaml`.
- Accepts CloudEvents POSTed to it (it is `K_SINK` for the HTTP functions in local runs).
- Routes every event by the Triggers in `knative/eventing/triggers.yaml` and delivers it over HTTP
  with the Trigger delivery semantics (retry with exponential backoff on 5xx, 404, 408, 409, 429);
  an event that fails for good goes, as Knative's dispatcher sends it, to the dead-letter broker's
  Trigger (the dead-letter function records it).
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from streamspace import kube
from streamspace.events.apiserver import apiserver_event, ping_event
from streamspace.events.dead_letter import dead_letter_event
from streamspace.local.identities import SOURCE_IDENTITY
from streamspace.local.routing import MAIN_BROKER, Schedule, dead_letter_sink, route_event, schedules
from streamspace.observability import function_var
from streamspace.records import record

log = logging.getLogger("streamspace.relay")

RETRYABLE = {404, 408, 409, 429}
WATCHED = (
    ("Session", None),
    ("Template", None),
    ("Deployment", "app.kubernetes.io/managed-by=streamspace"),
    ("DaemonSet", "app.kubernetes.io/managed-by=streamspace,app.kubernetes.io/name=streamspace-image-puller"),
    ("LegacyTemplate", None),
    ("LegacySession", None),
)


@record
class Delivery:
    function: str
    headers: dict[str, str]
    body: bytes
    attempt: int = 0
    broker: str = MAIN_BROKER


def attributes_of(headers: dict[str, str]) -> dict[str, str]:
    """CloudEvent attributes and extensions from binary-mode headers (`ce-type` -> `type`)."""
    return {k[3:].lower(): v for k, v in headers.items() if k.lower().startswith("ce-")}


def cron_matches(expression: str, moment: datetime) -> bool:
    """Five-field cron (minute hour day-of-month month day-of-week): `*`, `*/n`, `a`, `a-b`, lists."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"cron expression needs five fields: {expression!r}")
    values = (moment.minute, moment.hour, moment.day, moment.month, (moment.isoweekday() % 7))
    return all(_field_matches(f, v) for f, v in zip(fields, values, strict=True))


def _field_matches(field: str, value: int) -> bool:
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            if value % step == 0:
                return True
            continue
        low_text, _, high_text = base.partition("-")
        low = int(low_text)
        high = int(high_text) if high_text else (low if not step_text else 59)
        if low <= value <= high and (value - low) % step == 0:
            return True
    return False


class Relay:
    def __init__(self, function_urls: dict[str, str], namespace: str, source_namespace: str | None = None, *,
                 max_attempts: int = 5, backoff_seconds: float = 0.2) -> None:
        self.function_urls = function_urls
        self.namespace = namespace  # watched, as the ApiServerSources' namespaceSelector picks it
        self.source_namespace = source_namespace or namespace  # where the PingSources live (the control plane)
        self.max_attempts = max_attempts
        self.backoff = backoff_seconds
        self._queue: queue.Queue[Delivery | None] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._retries: set[threading.Timer] = set()  # redeliveries waiting for their backoff
        self._watches: dict[str, list[Any]] = {kind: [] for kind, _ in WATCHED}  # each watch's open response
        self.delivered: list[tuple[str, str, int]] = []  # (function, type, status): observability for tests
        # Deliveries queued, being posted or waiting for a retry: zero means nothing is in flight.
        self._outstanding = 0
        self._published = 0
        self._outstanding_changed = threading.Condition()
        # Per watched kind: set once its first list is done (changes after it are then streamed),
        # and the resourceVersion of the newest change the watch has passed on.
        self._watching = {kind: threading.Event() for kind, _ in WATCHED}
        self.seen_version: dict[str, int] = {kind: 0 for kind, _ in WATCHED}

    # -- intake ----------------------------------------------------------------------------------
    def publish(self, headers: dict[str, str], body: bytes, broker: str = MAIN_BROKER) -> list[str]:
        """Route one event by `broker`'s Triggers; returns the functions it was queued for."""
        targets = [f for f in route_event(attributes_of(headers), broker) if f in self.function_urls]
        for function in targets:
            self._count(+1)
            self._queue.put(Delivery(function, headers, body, broker=broker))
        return targets

    def _count(self, change: int) -> None:
        with self._outstanding_changed:
            self._outstanding += change
            self._published += max(change, 0)
            self._outstanding_changed.notify_all()

    def wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """The broker ingress: accepts binary-mode CloudEvents (K_SINK)."""
        if environ.get("REQUEST_METHOD") != "POST":
            start_response("405 Method Not Allowed", [("Allow", "POST")])
            return [b""]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(min(length, 10 * 1024 * 1024))
        headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
                   if key.startswith("HTTP_")}
        headers["content-type"] = environ.get("CONTENT_TYPE", "application/json")
        if "ce-type" not in headers or "ce-source" not in headers or "ce-id" not in headers:
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [b"binary-mode CloudEvent required (ce-id, ce-type, ce-source headers)"]
        self.publish(headers, body)
        start_response("202 Accepted", [("Content-Type", "text/plain")])
        return [b""]

    # -- delivery --------------------------------------------------------------------------------
    def _deliver_forever(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                return
            status, answer = self._post(item)
            self.delivered.append((item.function, attributes_of(item.headers).get("type", ""), status))
            if (status >= 500 or status in RETRYABLE or status == 0) and item.attempt + 1 < self.max_attempts:
                delay = self.backoff * (2 ** item.attempt)
                retry = Delivery(item.function, item.headers, item.body, item.attempt + 1, item.broker)
                self._retry_later(delay, retry)
                continue  # still outstanding until the retry is answered
            if status >= 300 or status == 0:
                self._dead_letter(item, status, answer)
            self._count(-1)

    def _retry_later(self, delay: float, retry: Delivery) -> None:
        def due() -> None:
            with self._outstanding_changed:
                self._retries.discard(timer)
            self._queue.put(retry)

        timer = threading.Timer(delay, due)
        timer.daemon = True
        with self._outstanding_changed:
            if self._stop.is_set():
                return
            self._retries.add(timer)
        timer.start()

    def _dead_letter(self, item: Delivery, status: int, answer: bytes) -> None:
        """Like the Trigger's deadLetterSink: the original event, with Knative's error extensions, to the
        dead-letter broker (whose Trigger records it); dropped when it already came from there."""
        sink = dead_letter_sink(item.function) if item.broker == MAIN_BROKER else None
        log.warning("event failed for good (dead letter)", extra={"function": item.function, "status": status,
                                                                  "deadLetterSink": sink or "none"})
        if sink is None:
            return
        headers, body = dead_letter_event(item.headers, item.body, code=status,
                                          dest=self.function_urls[item.function].rstrip("/") + "/",
                                          response_body=answer)
        self.publish(headers, body, sink)

    def _post(self, item: Delivery) -> tuple[int, bytes]:
        """(status, response body); status 0 when the function could not be reached."""
        url = self.function_urls[item.function].rstrip("/") + "/"
        request = urllib.request.Request(url, data=item.body, headers=item.headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback only
                return int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()
        except (urllib.error.URLError, OSError) as exc:
            return 0, str(exc).encode()

    # -- sources ---------------------------------------------------------------------------------
    def _watch_forever(self, kind: str, label_selector: str | None) -> None:
        """ApiServerSource: list to learn the resourceVersion, then stream changes as events, as the
        sources' own ServiceAccount (never the harness administrator), so a verb their Role lacks fails
        here as it would fail the adapter in a cluster."""

        function_var.set(SOURCE_IDENTITY)  # this thread's calls go through the sources' kubeconfig context

        resource = kube.KINDS[kind]
        # As the ApiServerSources do: owned Deployments and image pullers in the sessions namespace, Sessions
        # and Templates in every namespace (those elsewhere are answered with a condition saying why).
        path = resource.path(self.namespace) if kind in ("Deployment", "DaemonSet") else \
            kube.Kind(resource.api_version, resource.plural, namespaced=False).path(None)
        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    listed = kube.request("GET", path, query={"labelSelector": label_selector})
                    version = listed.get("metadata", {}).get("resourceVersion", "")
                    # Like the ApiServerSource adapter, the listed objects are not sent (its store's
                    # Replace is a no-op): only changes after this resourceVersion are.
                    self._note_version(kind, version)
                    self._watching[kind].set()
                opened = self._watches[kind]
                opened.clear()
                if self._stop.is_set():
                    return
                for change in kube.watch(path, version, label_selector=label_selector, opened=opened):
                    if self._stop.is_set():
                        return
                    if change.get("type") == "ERROR":
                        version = ""  # expired resourceVersion: list again
                        break
                    obj = change.get("object", {})
                    version = obj.get("metadata", {}).get("resourceVersion", version)
                    action = {"ADDED": "add", "MODIFIED": "update", "DELETED": "delete"}.get(change.get("type", ""))
                    if action is not None:
                        obj.setdefault("kind", resource.kind_of(kind))
                        obj.setdefault("apiVersion", resource.api_version)
                        headers, body = apiserver_event(action, obj, resource.plural)
                        self.publish(headers, body)
                    self._note_version(kind, version)
            except Exception as exc:  # noqa: BLE001 - a watch gap: back off and re-list, like the adapter
                if self._stop.is_set():
                    return  # stop() shut the watch down
                log.warning("watch interrupted", extra={"kind": kind, "reason": str(exc)})
                version = ""
                self._stop.wait(1.0)

    def _note_version(self, kind: str, version: str) -> None:
        if version.isdigit():
            with self._outstanding_changed:
                self.seen_version[kind] = max(self.seen_version[kind], int(version))
                self._outstanding_changed.notify_all()

    def _tick_forever(self, items: tuple[Schedule, ...]) -> None:
        """PingSource: fire each schedule at the start of every matching minute."""
        last_minute = None
        while not self._stop.is_set():
            now = datetime.now().replace(second=0, microsecond=0)
            if now != last_minute:
                last_minute = now
                for schedule in items:
                    if cron_matches(schedule.cron, now):
                        self.fire(schedule)
            self._stop.wait(1.0)

    def fire(self, schedule: Schedule) -> list[str]:
        headers, body = ping_event(self.source_namespace, schedule.name, schedule.data, schedule.content_type)
        return self.publish(headers, body)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, *, watch: bool = True, schedule: bool = True, workers: int = 2) -> Relay:
        for index in range(workers):
            self._spawn(self._deliver_forever, f"relay-deliver-{index}")
        if watch:
            for kind, selector in WATCHED:
                self._spawn(functools.partial(self._watch_forever, kind, selector), f"relay-watch-{kind}")
        if schedule:
            self._spawn(functools.partial(self._tick_forever, schedules()), "relay-ping")
        return self

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> list[str]:
        """Stop every thread of the relay and wait until they have ended (at most `timeout` seconds in
        all): pending retries are cancelled, delivery workers are woken, the watches' open responses
        are shut down (a watch otherwise blocks in its read until the server ends it, a minute later).
        Returns the names of threads still running after the wait (none, unless a delivery's POST
        is still waiting for its function)."""
        self._stop.set()
        with self._outstanding_changed:
            retries, self._retries = list(self._retries), set()
        for timer in retries:
            timer.cancel()
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        while True:
            for opened in self._watches.values():
                for response in list(opened):  # again each round: a watch may have opened meanwhile
                    try:
                        response.shutdown()
                    except Exception:  # noqa: BLE001, S110 - already closed
                        pass
            running = [thread for thread in self._threads if thread.is_alive()]
            if not running or time.monotonic() >= deadline:
                return [thread.name for thread in running]
            running[0].join(min(0.2, max(0.0, deadline - time.monotonic())))

    def wait_watching(self, timeout: float = 30.0) -> bool:
        """Wait until every watch has made its first list: changes from then on are delivered."""
        deadline = time.monotonic() + timeout
        return all(event.wait(max(0.0, deadline - time.monotonic())) for event in self._watching.values())

    def idle(self) -> bool:
        """Whether no delivery is queued, being posted or waiting for its retry."""
        with self._outstanding_changed:
            return self._outstanding == 0

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no delivery is in flight (tests and demos)."""
        with self._outstanding_changed:
            return self._outstanding_changed.wait_for(lambda: self._outstanding == 0, timeout)

    def caught_up(self, newest_change: Callable[[str, str | None], int]) -> bool:
        """Whether the system has fallen quiet: nothing is in flight and every watch has passed on
        the newest change the API server records for it (`newest_change(kind, label_selector)`).

        The relay's state is read before and after asking the API server: if nothing was published
        in between, no delivery could have written anything the watches have not passed on yet.
        """
        before = self._progress()
        if before[0]:
            return False
        if any(before[2][kind] < newest_change(kind, selector) for kind, selector in WATCHED):
            return False
        return self._progress() == before

    def _progress(self) -> tuple[int, int, dict[str, int]]:
        with self._outstanding_changed:
            return self._outstanding, self._published, dict(self.seen_version)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
        """Wait until `predicate()`, re-checked whenever a delivery finishes or a watch moves on
        (and at least every 0.2 s, for conditions outside the relay)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._outstanding_changed:
                self._outstanding_changed.wait(min(0.2, remaining))
        return True
