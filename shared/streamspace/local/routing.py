"""Production routing, read from the Knative manifests so local runs cannot drift from the cluster.

- `knative/routing/httproute.yaml`: path -> HTTP function (the Host each rule rewrites to; longest
  match wins, Exact beats a PathPrefix of the same length, as in the Gateway API).
- `knative/eventing/triggers.yaml`: CloudEvent attributes -> CloudEvent function.
- `knative/eventing/pingsources.yaml`: schedules.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from streamspace.records import record


def knative_dir() -> Path:
    configured = os.environ.get("STREAMSPACE_KNATIVE_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[3] / "knative"


def _documents(path: Path) -> list[dict[str, Any]]:
    import yaml

    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if isinstance(doc, dict)]


@record
class PathRule:
    kind: str  # Exact | PathPrefix
    value: str
    function: str

    def matches(self, path: str) -> bool:
        if self.kind == "Exact":
            return path == self.value
        prefix = self.value.rstrip("/")
        return path == prefix or path.startswith(prefix + "/") or prefix == ""


def rule_function(rule: dict[str, Any]) -> str:
    """The function a route rule reaches: the Host it rewrites to (`<function>.<namespace>.svc...`, the
    function's cluster-local name behind the networking layer's gateway)."""
    for item in rule.get("filters") or ():
        hostname = (item.get("urlRewrite") or {}).get("hostname")
        if item.get("type") == "URLRewrite" and hostname:
            return str(hostname).split(".", 1)[0]
    raise ValueError(f"route rule {rule.get('matches')} rewrites no Host to a function")


@lru_cache(maxsize=1)
def path_rules() -> tuple[PathRule, ...]:
    rules = []
    for doc in _documents(knative_dir() / "routing" / "httproute.yaml"):
        if doc.get("kind") != "HTTPRoute":
            continue
        for rule in doc["spec"]["rules"]:
            function = rule_function(rule)
            for match in rule.get("matches", []):
                path = match.get("path", {})
                rules.append(PathRule(path.get("type", "PathPrefix"), path.get("value", "/"), function))
    # Longest value first; for equal length, Exact before PathPrefix.
    rules.sort(key=lambda r: (-len(r.value), r.kind != "Exact"))
    return tuple(rules)


def route_path(path: str) -> str | None:
    for rule in path_rules():
        if rule.matches(path):
            return rule.function
    return None


@record
class TriggerRule:
    name: str
    function: str
    filters: tuple[tuple[str, str, str], ...]  # (operator, attribute, value); all must hold
    broker: str = "streamspace"

    def matches(self, attributes: dict[str, str]) -> bool:
        for operator, attribute, expected in self.filters:
            actual = attributes.get(attribute)
            if actual is None:
                return False
            if operator == "exact" and actual != expected:
                return False
            if operator == "prefix" and not actual.startswith(expected):
                return False
            if operator == "suffix" and not actual.endswith(expected):
                return False
        return True


def _filters(spec: dict[str, Any]) -> tuple[tuple[str, str, str], ...]:
    found: list[tuple[str, str, str]] = []
    for dialect in spec.get("filters", []):
        for clause in dialect.get("all", [dialect]):
            for operator, pairs in clause.items():
                if operator not in ("exact", "prefix", "suffix"):
                    raise ValueError(f"unsupported trigger filter operator {operator!r}")
                for attribute, value in pairs.items():
                    found.append((operator, attribute, str(value)))
    for attribute, value in (spec.get("filter", {}).get("attributes") or {}).items():
        found.append(("exact", attribute, str(value)))
    return tuple(found)


@lru_cache(maxsize=1)
def trigger_rules() -> tuple[TriggerRule, ...]:
    rules = []
    for doc in _documents(knative_dir() / "eventing" / "triggers.yaml"):
        if doc.get("kind") != "Trigger":
            continue
        spec = doc["spec"]
        rules.append(TriggerRule(doc["metadata"]["name"], spec["subscriber"]["ref"]["name"], _filters(spec),
                                 str(spec.get("broker") or "default")))
    return tuple(rules)


MAIN_BROKER = "streamspace"
DEAD_LETTER_BROKER = "streamspace-dlq"


def route_event(attributes: dict[str, str], broker: str = MAIN_BROKER) -> list[str]:
    """The functions `broker` would deliver an event with these attributes to (one per Trigger)."""
    return [rule.function for rule in trigger_rules() if rule.broker == broker and rule.matches(attributes)]


def dead_letter_sink(trigger_function: str) -> str | None:
    """The broker a failed delivery to `trigger_function` goes to (its Trigger's deadLetterSink; the
    kustomize patch gives every main-broker Trigger the dead-letter broker), or None for the
    dead-letter broker's own Triggers."""
    owners = {rule.broker for rule in trigger_rules() if rule.function == trigger_function}
    return DEAD_LETTER_BROKER if MAIN_BROKER in owners else None


@record
class Schedule:
    name: str
    cron: str
    data: str
    content_type: str


@lru_cache(maxsize=1)
def schedules() -> tuple[Schedule, ...]:
    found = []
    for doc in _documents(knative_dir() / "eventing" / "pingsources.yaml"):
        if doc.get("kind") != "PingSource":
            continue
        spec = doc["spec"]
        found.append(Schedule(doc["metadata"]["name"], spec["schedule"], spec.get("data", ""),
                              spec.get("contentType", "application/json")))
    return tuple(found)
