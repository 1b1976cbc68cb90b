"""CloudEvents at the edge: typed events in, outcomes mapped to what Knative delivery expects.

A CloudEvent function answers 2xx when done (never a CloudEvent in the body), 4xx for an event
that can never succeed, 5xx for "try again later", so the Broker's retry and dead-letter sink work.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from werkzeug.exceptions import BadRequest, ServiceUnavailable, UnprocessableEntity

from streamspace.config import environment
from streamspace.domain.errors import DomainError, ErrorKind, Invalid
from streamspace.observability import configure_logging, function_var, metrics, request_id_var
from streamspace.records import record
from streamspace.startup import pause_collector, resume_collector

log = logging.getLogger("streamspace.events")

APISERVER_PREFIX = "dev.knative.apiserver.resource."
PING_TYPE = "dev.knative.sources.ping"
SYNC_REQUESTED_TYPE = "io.streamspace.catalog.sync.requested"
# A user was deleted: the backup function deletes their profile objects from the store (docs/s3.md).
PROFILES_PURGE_TYPE = "io.streamspace.profiles.purge-requested"


class MalformedEvent(Invalid):
    """The event can never be processed (answer 400: the broker must not retry it)."""

    default_error = "malformed event"


class BatchFailed(DomainError):
    """Some items of one event's work failed while the others were done: a Template's Sessions, the
    idle sweep's due sessions, resync's repairs.

    It is retryable only when one of the failures is (the Kubernetes API or the database could not
    answer, a write raced another). A retry cannot get past RBAC refusing our account or an object
    the API server rejects, and would redo the whole batch forever: then the event is refused (to
    the dead-letter sink), and the next tick or resync takes those items up again once the cause is
    fixed. Its kind is that of the first failure that decided it."""

    default_error = "batch failed"

    def __init__(self, message: str, failures: Sequence[DomainError]) -> None:
        if not failures:
            raise ValueError("a batch fails with at least one failure")
        retryable = any(f.retryable for f in failures)
        super().__init__(message, retryable=retryable)
        self.kind: ErrorKind = next(f for f in failures if f.retryable == retryable).kind
        self.failures = tuple(failures)


@record
class ResourceEvent:
    """An ApiServerSource Resource-mode event: the whole object as the watch saw it."""

    action: str  # add | update | delete
    kind: str
    name: str
    namespace: str | None
    api_version: str
    obj: dict[str, Any]
    event_id: str

    @property
    def generation(self) -> int:
        return int(self.obj.get("metadata", {}).get("generation") or 0)

    @property
    def resource_version(self) -> str:
        return str(self.obj.get("metadata", {}).get("resourceVersion") or "")


def parse_resource_event(event: Any) -> ResourceEvent:
    event_type = str(event["type"])
    if not event_type.startswith(APISERVER_PREFIX):
        raise MalformedEvent(f"unexpected event type {event_type!r}")
    action = event_type[len(APISERVER_PREFIX):]
    if action not in ("add", "update", "delete"):
        raise MalformedEvent(f"unexpected ApiServerSource action {action!r}")
    data = event.get_data() if hasattr(event, "get_data") else event.data
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except ValueError:
            raise MalformedEvent("event data is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedEvent("event data must be the object as a JSON object")
    metadata = data.get("metadata")
    if not isinstance(metadata, dict) or not metadata.get("name"):
        raise MalformedEvent("event data has no metadata.name")
    kind = str(data.get("kind") or _attr(event, "kind") or "")
    if not kind:
        raise MalformedEvent("event names no kind")
    return ResourceEvent(
        action=action,
        kind=kind,
        name=str(metadata["name"]),
        namespace=metadata.get("namespace"),
        api_version=str(data.get("apiVersion") or _attr(event, "apiversion") or ""),
        obj=data,
        event_id=str(event["id"]),
    )


def _attr(event: Any, name: str) -> Any:
    try:
        return event[name]
    except KeyError:
        return None


def event_function(function: str) -> Callable[[Callable[[Any], Any]], Callable[[Any], None]]:
    """Wrap a CloudEvent handler: logs with the event id, metrics, and the delivery outcome codes."""

    def decorate(handler: Callable[[Any], Any]) -> Callable[[Any], None]:
        pause_collector()  # until the first answer: what the start allocates lives as long as the process
        configure_logging(environment().log_level)

        @functools.wraps(handler)
        def wrapper(event: Any) -> None:
            event_type = str(_attr(event, "type") or "unknown")
            token = request_id_var.set(str(_attr(event, "id") or uuid.uuid4().hex))
            function_token = function_var.set(function)
            outcome = "done"
            try:
                handler(event)
            except MalformedEvent as exc:
                outcome = "malformed"
                log.warning("malformed event refused", extra={"type": event_type, "reason": str(exc)})
                raise BadRequest(str(exc)) from None
            except DomainError as exc:
                if exc.retryable:
                    outcome = "retry"
                    log.warning("event will be retried", extra={"type": event_type, "kind": exc.kind.value,
                                                                "reason": str(exc)})
                    # Retry-After: Knative's delivery honours it where `retryAfterMax` is set.
                    raise ServiceUnavailable(f"{exc.kind.value}: {exc}", retry_after=exc.retry_after) from None
                # The same event would fail the same way again (RBAC refuses us, the object is
                # invalid): refuse it so the broker hands it to the dead-letter sink instead of
                # retrying forever. The periodic resync brings the object back once that is fixed.
                outcome = "failed"
                log.error("event failed and will not be retried", extra={"type": event_type, "kind": exc.kind.value,
                                                                         "reason": str(exc)})
                raise UnprocessableEntity(f"{exc.kind.value}: {exc}") from None
            finally:
                metrics.observe_event(function, event_type, outcome)
                request_id_var.reset(token)
                function_var.reset(function_token)
                resume_collector()

        return wrapper

    return decorate


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def binary_headers(event_type: str, source: str, *, subject: str | None = None,
                   extensions: dict[str, str] | None = None, event_id: str | None = None) -> dict[str, str]:
    """The headers of a binary-mode CloudEvent (as Knative sources and brokers send them)."""
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id or str(uuid.uuid4()),
        "ce-type": event_type,
        "ce-source": source,
        "ce-time": now_rfc3339(),
        "Content-Type": "application/json",
    }
    if subject:
        headers["ce-subject"] = subject
    for key, value in (extensions or {}).items():
        headers[f"ce-{key}"] = value
    return headers


def emit(event_type: str, source: str, data: dict[str, Any], *, subject: str | None = None) -> bool:
    """POST a CloudEvent to the broker (K_SINK, injected by a SinkBinding). Returns False when no
    sink is configured or it refused: callers treat emission as a hint that a schedule backs up."""
    import json

    return send_to_broker(binary_headers(event_type, source, subject=subject), json.dumps(data).encode())


def send_to_broker(headers: dict[str, str], body: bytes) -> bool:
    """POST one binary-mode CloudEvent to the broker (K_SINK); True when it accepted it."""
    import urllib.error
    import urllib.request

    event_type = headers.get("ce-type", "")
    sink = environment().k_sink
    if not sink:
        log.info("no K_SINK configured; event not emitted", extra={"type": event_type})
        return False
    if not sink.startswith(("http://", "https://")):
        log.warning("K_SINK is not an http(s) URL; event not emitted", extra={"type": event_type})
        return False
    request = urllib.request.Request(sink, data=body, method="POST", headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - K_SINK: operator config
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError) as exc:
        log.warning("event emission failed", extra={"type": event_type, "reason": str(exc)})
        return False
