"""Structured JSON logs and Prometheus metrics, shared by every function.

prometheus_client is imported on first use so that a cold start does not pay for it before the
first request needs it.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

request_id_var: ContextVar[str] = ContextVar("request_id", default="")
# The function handling the current request or event. In a cluster each function is its own pod; in
# `make run` and the tests they share a process, and the Kubernetes client uses this to act as the
# function's own ServiceAccount (kube.api_client).
function_var: ContextVar[str] = ContextVar("function", default="")

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id_var.get()
        if rid:
            payload["requestId"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


_configured = False


def configure_logging(level: str = "INFO") -> None:
    global _configured
    if _configured:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("streamspace")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    _configured = True


_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _Metrics:
    """Request and event metrics recorded into plain dicts; prometheus_client is imported only when
    /metrics is scraped, so recording costs a cold start nothing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str, str], int] = {}
        self.latency: dict[tuple[str, str], list[float]] = {}  # per-bucket counts, then sum, then count
        self.events: dict[tuple[str, str, str], int] = {}
        self.dead_letters: dict[tuple[str, str, str], int] = {}
        # Gauges read at scrape time (name -> (help, label, read)): state kept elsewhere, e.g. the database.
        self._gauges: dict[str, tuple[str, str, Callable[[], dict[str, float]]]] = {}
        self._registry: Any = None

    def observe_request(self, function: str, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (function, method, route, str(status))
            self.requests[key] = self.requests.get(key, 0) + 1
            series = self.latency.setdefault((function, route), [0.0] * (len(_BUCKETS) + 2))
            for index, bound in enumerate(_BUCKETS):
                if seconds <= bound:
                    series[index] += 1
            series[-2] += seconds
            series[-1] += 1

    def observe_event(self, function: str, event_type: str, outcome: str) -> None:
        with self._lock:
            key = (function, event_type, outcome)
            self.events[key] = self.events.get(key, 0) + 1

    def observe_dead_letter(self, event_type: str, code: int | None, outcome: str) -> None:
        """A dead CloudEvent reached the dead-letter function (outcome: recorded | duplicate | reopened)."""
        with self._lock:
            key = (event_type, "" if code is None else str(code), outcome)
            self.dead_letters[key] = self.dead_letters.get(key, 0) + 1

    def gauge_at_scrape(self, name: str, help_text: str, label: str, read: Callable[[], dict[str, float]]) -> None:
        """Expose `read()` ({label value: number}) as gauge `name` whenever /metrics is scraped; a read
        that fails leaves the gauge out of that scrape instead of failing it."""
        with self._lock:
            self._gauges[name] = (help_text, label, read)

    def _collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        with self._lock:
            requests, latency, events = dict(self.requests), {k: list(v) for k, v in self.latency.items()}, dict(
                self.events)
            dead_letters = dict(self.dead_letters)
        counter = CounterMetricFamily("streamspace_http_requests", "HTTP requests handled",
                                      labels=["function", "method", "route", "status"])
        for labels, value in requests.items():
            counter.add_metric(list(labels), value)
        yield counter
        histogram = HistogramMetricFamily("streamspace_http_request_duration_seconds", "HTTP request latency",
                                          labels=["function", "route"])
        for route_labels, series in latency.items():
            buckets = [(str(bound), series[i]) for i, bound in enumerate(_BUCKETS)] + [("+Inf", series[-1])]
            histogram.add_metric(list(route_labels), buckets, series[-2])
        yield histogram
        handled = CounterMetricFamily("streamspace_events", "CloudEvents handled",
                                      labels=["function", "type", "outcome"])
        for event_labels, count in events.items():
            handled.add_metric(list(event_labels), count)
        yield handled
        dead = CounterMetricFamily("streamspace_dead_letters", "Dead CloudEvents received by the dead-letter function",
                                   labels=["type", "code", "outcome"])
        for dead_labels, count in dead_letters.items():
            dead.add_metric(list(dead_labels), count)
        yield dead
        yield from self._collect_gauges()

    def _collect_gauges(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        with self._lock:
            gauges = dict(self._gauges)
        for name, (help_text, label, read) in gauges.items():
            try:
                values = read()
            except Exception:  # noqa: BLE001 - the database may be down: the other metrics still count
                logging.getLogger("streamspace.metrics").warning("gauge not read", extra={"gauge": name})
                continue
            gauge = GaugeMetricFamily(name, help_text, labels=[label])
            for value_label, value in values.items():
                gauge.add_metric([value_label], value)
            yield gauge

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

        with self._lock:
            first = self._registry is None
            self._registry = REGISTRY
        if first:
            collector = type("StreamspaceCollector", (), {"collect": lambda _self: self._collect()})()
            REGISTRY.register(collector)  # process metrics (CPU, memory, fds) come with the default registry
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


metrics = _Metrics()
