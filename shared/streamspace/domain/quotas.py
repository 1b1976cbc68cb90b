"""Quota rules without I/O: limits and usage as numbers, the defaults, which limit a request
breaks, and the API's text for each amount."""

from __future__ import annotations

from typing import Any

from streamspace.domain.errors import Forbidden, ValidationError
from streamspace.domain.quantity import cpu_millis, format_cpu, format_memory, parse_memory
from streamspace.records import record

GiB = 2**30


@record
class Usage:
    sessions: int
    cpu_millis: int
    memory_bytes: int
    storage_bytes: int


NO_USAGE = Usage(0, 0, 0, 0)


@record
class Limits:
    max_sessions: int
    max_cpu_millis: int
    max_memory_bytes: int
    max_storage_bytes: int


USER_DEFAULTS = Limits(5, 4000, 16 * GiB, 100 * GiB)
GROUP_DEFAULTS = Limits(20, 16000, 64 * GiB, 500 * GiB)
LIMIT_COLUMNS = ("max_sessions", "max_cpu_millis", "max_memory_bytes", "max_storage_bytes")


def display(resource: str, amount: int) -> str:
    """A resource amount as clients read it: sessions as a number, cpu/memory/storage as quantities."""
    if resource == "sessions":
        return str(amount)
    if resource == "cpu":
        return format_cpu(amount)
    return format_memory(amount)


class QuotaExceeded(Forbidden):
    """A create would take a user or group past a limit: 403 with the `quota` that refused it."""

    def __init__(self, limit: str, scope: str, current: str, requested: str, maximum: str) -> None:
        self.limit = limit  # which resource: sessions | cpu | memory | storage
        self.scope = scope  # "user" or "group:<name>"
        self.current = current
        self.requested = requested
        self.maximum = maximum
        where = "your" if scope == "user" else f"group {scope.split(':', 1)[1]!r}"
        super().__init__(f"{limit} quota exceeded for {where} quota: {current} in use, {requested} requested,"
                         f" limit {maximum}", error="Quota exceeded",
                         quota={"resource": limit, "scope": scope, "current": current, "requested": requested,
                                "limit": maximum})


def exceeded(scope: str, limits: Limits, used: Usage, requested: Usage) -> QuotaExceeded | None:
    """The first limit that `requested` on top of `used` breaks, or None."""
    checks = (
        ("sessions", used.sessions, requested.sessions, limits.max_sessions),
        ("cpu", used.cpu_millis, requested.cpu_millis, limits.max_cpu_millis),
        ("memory", used.memory_bytes, requested.memory_bytes, limits.max_memory_bytes),
        ("storage", used.storage_bytes, requested.storage_bytes, limits.max_storage_bytes),
    )
    for resource, current, wanted, maximum in checks:
        if wanted > 0 and current + wanted > maximum:
            return QuotaExceeded(resource, scope, display(resource, current), display(resource, wanted),
                                 display(resource, maximum))
    return None


def limits_to_api(limits: Limits) -> dict[str, Any]:
    return {"maxSessions": limits.max_sessions, "maxCPU": display("cpu", limits.max_cpu_millis),
            "maxMemory": display("memory", limits.max_memory_bytes),
            "maxStorage": display("storage", limits.max_storage_bytes)}


def usage_to_api(used: Usage) -> dict[str, Any]:
    return {"sessions": used.sessions, "cpu": display("cpu", used.cpu_millis),
            "memory": display("memory", used.memory_bytes), "storage": display("storage", used.storage_bytes)}


LIMIT_FIELDS = frozenset({"maxSessions", "maxCPU", "maxMemory", "maxStorage"})
_COLUMNS = {"maxSessions": "max_sessions", "maxCPU": "max_cpu_millis", "maxMemory": "max_memory_bytes",
            "maxStorage": "max_storage_bytes"}


def parse_limits(body: dict[str, Any]) -> dict[str, int | None]:
    """The limit fields present in `body` as Limits field -> value (None: back to the default)."""
    out: dict[str, int | None] = {}
    for name in sorted(LIMIT_FIELDS & set(body)):
        value = body[name]
        if value is None:
            out[_COLUMNS[name]] = None
        elif name == "maxSessions":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100_000:
                raise ValidationError(name, f"expected a whole number from 0 to 100000, got {value!r}")
            out[_COLUMNS[name]] = value
        elif name == "maxCPU":
            out[_COLUMNS[name]] = cpu_millis(value, name, allow_zero=True)
        else:
            out[_COLUMNS[name]] = parse_memory(value, name, allow_zero=True)
    return out
