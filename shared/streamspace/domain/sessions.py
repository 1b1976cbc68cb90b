"""Session objects: states, resource resolution, the manifest the API creates, and the REST view."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import Any, TypeVar

from streamspace.domain.conversion import (
    API_VERSION,
    CONVERSION_NOTES_ANNOTATION,
    LEGACY_API_VERSION,
    ORIGINAL_NAME_ANNOTATION,
    Conversion,
)
from streamspace.domain.duration import parse_duration
from streamspace.domain.errors import ValidationError
from streamspace.domain.labels import LABEL_TEMPLATE, LABEL_USER
from streamspace.domain.names import (
    DNS_LABEL_MAX,
    SESSION_NAME_MAX,
    dns_label,
    is_dns_label,
    user_label,
    validate_session_name,
)
from streamspace.domain.resources import (
    RESOURCE_NAMES,
    ResourceRequirements,
    check_requests_within_limits,
    merge_resources,
    normalise_resources,
    session_resources,
)

SESSION_KIND = "Session"

DEFAULT_IDLE_TIMEOUT = "30m"
DEFAULT_MAX_SESSION_DURATION = "8h"
DEFAULT_PERSISTENT_HOME = True
TAG_MAX_LENGTH = 64
TAGS_MAX_ITEMS = 64

_T = TypeVar("_T")


class SessionState(StrEnum):
    """What the owner wants (spec.state)."""

    RUNNING = "running"
    HIBERNATED = "hibernated"
    TERMINATED = "terminated"


class SessionPhase(StrEnum):
    """What is actually the case (status.phase). Running means the pod is Ready."""

    PENDING = "Pending"
    RUNNING = "Running"
    HIBERNATED = "Hibernated"
    FAILED = "Failed"
    TERMINATED = "Terminated"


def parse_state(value: object, field: str = "state") -> SessionState:
    if isinstance(value, str) and value in {state.value for state in SessionState}:
        return SessionState(value)
    choices = ", ".join(str(s) for s in SessionState)
    raise ValidationError(field, f"expected one of {choices}, got {value!r}")


def parse_tags(value: object, field: str = "tags") -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list | tuple) or len(value) > TAGS_MAX_ITEMS:
        raise ValidationError(field, f"expected a list of at most {TAGS_MAX_ITEMS} strings")
    for index, tag in enumerate(value):
        if not isinstance(tag, str) or not 1 <= len(tag) <= TAG_MAX_LENGTH:
            raise ValidationError(f"{field}[{index}]", f"expected a string of 1-{TAG_MAX_LENGTH} characters")
    return list(dict.fromkeys(value))


def resolve_resources(
    requested: Mapping[str, Any] | None,
    template_defaults: Mapping[str, Any] | None,
    configured_defaults: Mapping[str, Any],
) -> ResourceRequirements:
    """Complete requests and limits for a new session.

    Per resource, the request wins over the Template's defaultResources, which wins over the
    configured defaults. Each layer may use either shape and name only some resources.
    """
    layers = []
    if requested is not None:
        layers.append(normalise_resources(requested, "resources"))
    if template_defaults is not None:
        layers.append(normalise_resources(template_defaults, "template.defaultResources"))
    layers.append(normalise_resources(configured_defaults, "config.resources"))
    resources = merge_resources(*layers)
    for name in RESOURCE_NAMES:
        if name not in resources["limits"]:
            raise ValidationError(f"resources.{name}", "not given, and no default is configured")
    check_requests_within_limits(resources, "resources")
    return resources


def session_manifest(
    name: str,
    namespace: str,
    user: str,
    template: str,
    state: str = SessionState.RUNNING,
    resources: Mapping[str, Any] | None = None,
    persistent_home: bool = DEFAULT_PERSISTENT_HOME,
    idle_timeout: str = DEFAULT_IDLE_TIMEOUT,
    max_session_duration: str = DEFAULT_MAX_SESSION_DURATION,
    tags: Iterable[str] = (),
) -> dict[str, Any]:
    """The Session object the API creates; every argument validated (ValidationError naming the field).

    `user` is the owner's username, stored as its DNS-safe label (see names.user_label).
    """
    validate_session_name(name)
    owner = user_label(user)
    if not is_dns_label(template, DNS_LABEL_MAX):
        raise ValidationError("template", f"expected a Template name (a DNS-1123 label), got {template!r}")
    spec: dict[str, Any] = {
        "user": owner,
        "template": template,
        "state": str(parse_state(state)),
        "persistentHome": bool(persistent_home),
        "idleTimeout": idle_timeout,
        "maxSessionDuration": max_session_duration,
    }
    parse_duration(idle_timeout, "idleTimeout")
    parse_duration(max_session_duration, "maxSessionDuration")
    if resources is not None:
        spec["resources"] = normalise_resources(resources, "resources")
    tag_list = parse_tags(list(tags))
    if tag_list:
        spec["tags"] = tag_list
    return {
        "apiVersion": API_VERSION,
        "kind": SESSION_KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {LABEL_USER: owner, LABEL_TEMPLATE: template},
        },
        "spec": spec,
    }


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def session_to_api(obj: Mapping[str, Any], active_connections: int = 0) -> dict[str, Any]:
    """A Session object as stored -> the REST Session JSON. Tolerant: never raises on stored data.

    Defaults the CRD would apply are filled in, so objects created before defaulting read the same.
    """
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    usage = status.get("resourceUsage") or {}
    conditions = [
        {key: condition.get(key) for key in ("type", "status", "reason", "message", "lastTransitionTime")}
        for condition in status.get("conditions") or []
        if isinstance(condition, Mapping)
    ]
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "user": spec.get("user"),
        "template": spec.get("template"),
        "state": spec.get("state", str(SessionState.RUNNING)),
        "persistentHome": spec.get("persistentHome", DEFAULT_PERSISTENT_HOME),
        "idleTimeout": spec.get("idleTimeout", DEFAULT_IDLE_TIMEOUT),
        "maxSessionDuration": spec.get("maxSessionDuration", DEFAULT_MAX_SESSION_DURATION),
        "resources": session_resources(spec.get("resources")),
        "tags": list(spec.get("tags") or []),
        "status": {
            "phase": status.get("phase") or str(SessionPhase.PENDING),
            "podName": status.get("podName"),
            "url": status.get("url"),
            "lastActivity": status.get("lastActivity"),
            "resourceUsage": {
                "memory": _text_or_none(usage.get("memory")),
                "cpu": _text_or_none(usage.get("cpu")),
            },
            "conditions": conditions,
            "message": status.get("message"),
        },
        "createdAt": meta.get("creationTimestamp"),
        "activeConnections": active_connections,
    }


_SESSION_SPEC_FIELDS = frozenset(
    {"user", "template", "state", "resources", "persistentHome", "idleTimeout", "maxSessionDuration", "tags"}
)


def convert_session_manifest(doc: object) -> Conversion:
    """A Session manifest of the earlier StreamSpace (stream.streamspace.io/v1alpha1, flat resources)
    or of today's format -> a canonical stream.space/v1alpha1 Session, with every problem and warning.

    Names follow the same rule as the API: a session name that is not a DNS-1123 label of at most
    SESSION_NAME_MAX characters is renamed, and the Template it names is normalised exactly as the
    Template converter renames Templates, so the pair still fits together.
    """
    if not isinstance(doc, Mapping):
        return Conversion(None, (f"<document>: expected a Session manifest (a mapping), got {type(doc).__name__}",))
    problems: list[str] = []
    warnings: list[str] = []

    def attempt(read: Callable[[], _T]) -> _T | None:
        try:
            return read()
        except ValidationError as error:
            problems.append(str(error))
            return None

    if doc.get("apiVersion") not in (API_VERSION, LEGACY_API_VERSION):
        problems.append(f"apiVersion: expected {API_VERSION} or {LEGACY_API_VERSION}, "
                        f"got {doc.get('apiVersion')!r}")
    if doc.get("kind") != SESSION_KIND:
        problems.append(f"kind: expected {SESSION_KIND}, got {doc.get('kind')!r}")
    raw_metadata = doc.get("metadata")
    metadata: Mapping[str, Any] = raw_metadata if isinstance(raw_metadata, Mapping) else {}
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        problems.append("metadata.name: required")
        name = ""
    spec = doc.get("spec")
    if not isinstance(spec, Mapping):
        problems.append(f"spec: expected an object, got {type(spec).__name__}")
        spec = {}
    for key in spec:
        if key not in _SESSION_SPEC_FIELDS:
            warnings.append(f"spec.{key}: unknown field, dropped")
    user, template = spec.get("user"), spec.get("template")
    for field, value in (("spec.user", user), ("spec.template", template)):
        if not isinstance(value, str) or not value:
            problems.append(f"{field}: required")
    state = attempt(lambda: parse_state(spec.get("state", str(SessionState.RUNNING)), "spec.state"))
    resources = None
    if spec.get("resources") is not None:
        resources = attempt(lambda: normalise_resources(spec["resources"], "spec.resources"))
    durations: dict[str, str] = {}
    for key, default in (("idleTimeout", DEFAULT_IDLE_TIMEOUT), ("maxSessionDuration", DEFAULT_MAX_SESSION_DURATION)):
        value = spec.get(key, default)
        try:
            parse_duration(value, f"spec.{key}")
            durations[key] = value
        except ValidationError as error:
            problems.append(str(error))
    persistent = spec.get("persistentHome", DEFAULT_PERSISTENT_HOME)
    if not isinstance(persistent, bool):
        problems.append(f"spec.persistentHome: expected true or false, got {persistent!r}")
    tags = attempt(lambda: parse_tags(spec.get("tags"), "spec.tags"))
    if problems or not isinstance(user, str) or not isinstance(template, str) or state is None:
        return Conversion(None, tuple(problems), tuple(warnings))

    annotations = dict(metadata.get("annotations") or {}) if isinstance(metadata.get("annotations"), Mapping) else {}
    new_name = name if is_dns_label(name, SESSION_NAME_MAX) else dns_label(name, SESSION_NAME_MAX)
    if new_name != name:
        warnings.append(f"metadata.name: {name!r} is not a DNS-1123 label of at most {SESSION_NAME_MAX} "
                        f"characters; renamed to {new_name!r}")
        annotations[ORIGINAL_NAME_ANNOTATION] = name
    owner = user_label(user)
    if owner != user:
        warnings.append(f"spec.user: {user!r} is stored as its label {owner!r}")
    template_name = dns_label(template)
    if template_name != template:
        warnings.append(f"spec.template: {template!r} is the Template renamed to {template_name!r}")
    if warnings:
        annotations[CONVERSION_NOTES_ANNOTATION] = "\n".join(warnings)
    manifest = session_manifest(
        new_name,
        metadata["namespace"] if isinstance(metadata.get("namespace"), str) else "",
        user,
        template_name,
        state=str(state),
        resources=resources,
        persistent_home=bool(persistent),
        idle_timeout=durations["idleTimeout"],
        max_session_duration=durations["maxSessionDuration"],
        tags=tags or (),
    )
    meta = manifest["metadata"]
    if not meta["namespace"]:
        del meta["namespace"]
    labels = metadata.get("labels")
    if isinstance(labels, Mapping):
        meta["labels"] = {**{str(k): str(v) for k, v in labels.items()}, **meta["labels"]}
    if annotations:
        meta["annotations"] = {str(k): str(v) for k, v in annotations.items()}
    return Conversion(manifest, (), tuple(warnings))
