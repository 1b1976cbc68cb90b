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
from contextvars import ContextVar
from typing import Any

request_id_var: ContextVar[str] = ContextVar("request_id", default="")

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


class _Metrics:
    """Lazily created Prometheus collectors (one registry per process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready = False

    def _init(self) -> None:
        from prometheus_client import Counter, Histogram

        self.requests = Counter(
            "streamspace_http_requests_total", "HTTP requests handled", ["function", "method", "route", "status"]
        )
        self.latency = Histogram(
            "streamspace_http_request_duration_seconds", "HTTP request latency", ["function", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.events = Counter(
            "streamspace_events_total", "CloudEvents handled", ["function", "type", "outcome"]
        )
        self._ready = True

    def ensure(self) -> _Metrics:
        if not self._ready:
            with self._lock:
                if not self._ready:
                    self._init()
        return self

    def observe_request(self, function: str, method: str, route: str, status: int, seconds: float) -> None:
        self.ensure()
        self.requests.labels(function, method, route, str(status)).inc()
        self.latency.labels(function, route).observe(seconds)

    def observe_event(self, function: str, event_type: str, outcome: str) -> None:
        self.ensure()
        self.events.labels(function, event_type, outcome).inc()

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        self.ensure()
        return generate_latest(), CONTENT_TYPE_LATEST


metrics = _Metrics()
