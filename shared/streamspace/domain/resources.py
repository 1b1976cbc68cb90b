"""CPU/memory requirements in the two shapes the CRDs accept.

Kubernetes style ``{requests: {cpu, memory}, limits: {cpu, memory}}`` or the flat short form
``{memory, cpu}`` (requests = limits). Everything is normalised to the Kubernetes style; a value
given only as a request or only as a limit is used for both, so every session has a ceiling that
quotas can count.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, TypedDict

from streamspace.domain.errors import ValidationError, join_field
from streamspace.domain.quantity import cpu_millis, format_cpu, format_memory, parse_memory

ResourceName = Literal["cpu", "memory"]
RESOURCE_NAMES: Final[tuple[ResourceName, ...]] = ("cpu", "memory")
_SECTIONS: Final[tuple[Literal["requests", "limits"], ...]] = ("requests", "limits")
RESOURCES_FORM = "an object {memory, cpu} or {requests: {memory, cpu}, limits: {memory, cpu}}"


class ResourceList(TypedDict, total=False):
    cpu: str
    memory: str


class ResourceRequirements(TypedDict):
    requests: ResourceList
    limits: ResourceList


class FlatResources(TypedDict):
    """The REST contract's view: the limits (what the session may use)."""

    memory: str | None
    cpu: str | None


class SessionResources(FlatResources):
    """A session body's resources: the flat limits v0.2 clients read, plus what the pod requests
    (what the scheduler reserves) and its limits, side by side."""

    requests: FlatResources
    limits: FlatResources


def _amount(name: ResourceName, value: object, field: str) -> tuple[str, int]:
    """(quantity text to store, exact amount to compare). Numbers are stored as quantity strings."""
    if name == "cpu":
        millis = cpu_millis(value, field)
        return (value if isinstance(value, str) else format_cpu(millis)), millis
    size = parse_memory(value, field)
    return (value if isinstance(value, str) else str(size)), size


def _resource_list(value: object, field: str) -> ResourceList:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(field, f"expected an object {{memory, cpu}}, got {value!r}")
    result: ResourceList = {}
    for name, amount in value.items():
        if name == "cpu":
            result["cpu"] = _amount("cpu", amount, join_field(field, "cpu"))[0]
        elif name == "memory":
            result["memory"] = _amount("memory", amount, join_field(field, "memory"))[0]
        else:
            raise ValidationError(join_field(field, str(name)), "unknown resource; only cpu and memory are supported")
    return result


def check_requests_within_limits(resources: ResourceRequirements, field: str) -> None:
    for name in RESOURCE_NAMES:
        request, limit = resources["requests"].get(name), resources["limits"].get(name)
        if request is None or limit is None:
            continue
        if _amount(name, request, "")[1] > _amount(name, limit, "")[1]:
            raise ValidationError(join_field(field, f"requests.{name}"), f"{request} exceeds the limit of {limit}")


def normalise_resources(value: object, field: str) -> ResourceRequirements:
    """Either accepted shape -> Kubernetes style. Partial input stays partial (only keys given)."""
    if not isinstance(value, Mapping):
        raise ValidationError(field, f"expected {RESOURCES_FORM}, got {value!r}")
    for key in value:
        if key not in RESOURCE_NAMES and key not in _SECTIONS:
            raise ValidationError(join_field(field, str(key)), f"unknown field; expected {RESOURCES_FORM}")
    has_flat = any(key in value for key in RESOURCE_NAMES)
    has_sections = any(key in value for key in _SECTIONS)
    if has_flat and has_sections:
        raise ValidationError(field, f"mixes both shapes; expected {RESOURCES_FORM}")
    if has_flat:
        flat = _resource_list(value, field)
        return {"requests": ResourceList(**flat), "limits": ResourceList(**flat)}
    requests = _resource_list(value.get("requests"), join_field(field, "requests"))
    limits = _resource_list(value.get("limits"), join_field(field, "limits"))
    for name in RESOURCE_NAMES:
        if name in requests and name not in limits:
            limits[name] = requests[name]
        elif name in limits and name not in requests:
            requests[name] = limits[name]
    resources: ResourceRequirements = {"requests": requests, "limits": limits}
    check_requests_within_limits(resources, field)
    return resources


def merge_resources(*layers: ResourceRequirements) -> ResourceRequirements:
    """Per resource, the first layer that names it wins (request and limit together)."""
    merged: ResourceRequirements = {"requests": {}, "limits": {}}
    for name in RESOURCE_NAMES:
        for layer in layers:
            if name in layer["requests"] or name in layer["limits"]:
                for section in _SECTIONS:
                    amount = layer[section].get(name)
                    if amount is not None:
                        merged[section][name] = amount
                break
    return merged


def _first_given(value: object, sections: tuple[str, ...]) -> FlatResources:
    """Per resource, the first of `value`'s sections (then its short-form keys) that names it."""
    flat: FlatResources = {"memory": None, "cpu": None}
    if not isinstance(value, Mapping):
        return flat
    sources = [*(value.get(section) for section in sections), value]
    for name in RESOURCE_NAMES:
        for source in sources:
            if isinstance(source, Mapping) and source.get(name) is not None:
                flat[name] = str(source[name])
                break
    return flat


def flat_resources(value: object) -> FlatResources:
    """Either shape -> ``{memory, cpu}`` as the REST contract shows it (limits first, then requests).

    Tolerant by design: it reads stored objects and never raises on them.
    """
    return _first_given(value, ("limits", "requests"))


def session_resources(value: object) -> SessionResources:
    """Either shape -> the session body's view, read as ``normalise_resources`` reads it (the short
    form is both request and limit; a value given only as a request or only as a limit is used for
    both). Tolerant by design: it reads stored objects and never raises on them."""
    limits = flat_resources(value)
    return {**limits, "requests": _first_given(value, ("requests", "limits")), "limits": limits}

def canonical_resources(resources: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """cpu and memory requests and limits in canonical text (1000m -> 1, 2048Mi -> 2Gi): the same
    amounts read the same however they were written (a session's index row and object, a warm
    desktop's fit)."""
    out: dict[str, dict[str, str]] = {}
    for section in ("requests", "limits"):
        values = resources.get(section) or {}
        out[section] = {}
        if "cpu" in values:
            out[section]["cpu"] = format_cpu(cpu_millis(values["cpu"], f"resources.{section}.cpu"))
        if "memory" in values:
            out[section]["memory"] = format_memory(parse_memory(values["memory"], f"resources.{section}.memory"))
    return out
