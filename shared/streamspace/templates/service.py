"""The /api/v1/templates operations: Template objects in the sessions namespace, in the REST shape.

Kubernetes is the store (there is no Template table; `store` calls it). Lists are served from the
process's watched list of Templates (kube.WatchedList: one LIST, then a watch), filtered here; while
that list is not in sync a list is one LIST call. Writes are admin-only (declared by the function)
and audited; a write returns once this process's watch has seen it. A disabled template
(`spec.enabled: false`) exists for admins only: users neither list nor read it (404).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from streamspace import audit
from streamspace.config import environment
from streamspace.db import transaction
from streamspace.domain.errors import Conflict, NotFound, ValidationError
from streamspace.domain.names import is_dns_label
from streamspace.domain.templates import (
    merge_template_patch,
    template_enabled,
    template_from_api,
    template_to_api,
    visible_in_catalog,
)
from streamspace.domain.warm import over_budget, peak_size
from streamspace.encoding import dumps
from streamspace.kube import KubeError
from streamspace.settings.service import WARM_POOL_BUDGET, platform_settings
from streamspace.templates import store

if TYPE_CHECKING:
    from streamspace.auth.principal import Principal

APP_TYPES = ("desktop", "webapp")


def list_templates(caller: Principal, *, category: str | None = None, tag: str | None = None,
                   app_type: str | None = None, enabled: bool | None = None, limit: int = 100,
                   offset: int = 0) -> dict[str, Any]:
    return _selected(_all_templates(), caller.is_admin, category, tag, app_type, enabled, limit, offset)


# The JSON answers of the list, for the watched list they were made from (`_converted`'s templates),
# by the question (admin or not, filters, window): while no Template changes, the same question gets
# the same bytes without filtering and encoding again. A change makes a new list, and the answers
# start over. Bounded: the filters are the caller's words.
_ANSWERS_MAX = 256
_answers: tuple[object, dict[tuple[Any, ...], bytes]] = (None, {})


def list_templates_json(caller: Principal, *, category: str | None = None, tag: str | None = None,
                        app_type: str | None = None, enabled: bool | None = None, limit: int = 100,
                        offset: int = 0) -> bytes:
    """`list_templates` as the JSON bytes the API answers (encoding.dumps of it, byte for byte), for
    GET /api/v1/templates."""
    global _answers
    templates = _all_templates()
    made_from, answers = _answers
    if made_from is not templates or len(answers) >= _ANSWERS_MAX:
        answers = {}
        if _converted is not None and _converted[2] is templates:  # a LIST outside the watch is not kept
            _answers = (templates, answers)
    question = (caller.is_admin, category, tag, app_type, enabled, limit, offset)
    answer = answers.get(question)
    if answer is None:
        answer = answers[question] = dumps(_selected(templates, caller.is_admin, category, tag, app_type, enabled,
                                                     limit, offset))
    return answer


def _selected(templates: list[dict[str, Any]], admin: bool, category: str | None, tag: str | None,
              app_type: str | None, enabled: bool | None, limit: int, offset: int) -> dict[str, Any]:
    if app_type is not None and app_type not in APP_TYPES:
        raise ValidationError("appType", f"expected one of {', '.join(APP_TYPES)}, got {app_type!r}")
    selected = [
        t for t in templates
        if visible_in_catalog(t["enabled"], admin=admin)
        and (category is None or (t["category"] or "").lower() == category.lower())
        and (tag is None or tag in t["tags"])
        and (app_type is None or t["appType"] == app_type)
        and (enabled is None or t["enabled"] is enabled)
    ]
    return {"templates": selected[offset:offset + limit], "total": len(selected)}


_converted: tuple[object, int, list[dict[str, Any]]] | None = None  # (watched list, generation, templates)
# A process's first list waits this long for the LIST its watched list starts with (one request on a cold
# start, not two side by side); a slower one is not waited for: the list asks the API server itself.
FIRST_LIST_WAIT = 5.0


def _all_templates() -> list[dict[str, Any]]:
    """Every Template of the namespace in the REST shape, sorted by name: from the process's
    watched list while it is in sync (converted once per change), else from one LIST."""
    global _converted
    namespace = environment().sessions_namespace
    watched = store.watched(namespace)
    snapshot = watched.first_snapshot(FIRST_LIST_WAIT)
    if snapshot is None:
        items = [template_to_api(obj) for obj in store.list_objects(namespace)]
        return sorted(items, key=lambda t: t["name"] or "")
    generation, objects = snapshot
    done = _converted
    if done is not None and done[0] is watched and done[1] == generation:
        return done[2]
    items = [template_to_api(obj) for obj in objects]  # already sorted by name
    _converted = (watched, generation, items)
    return items


def get_template(name: str, caller: Principal) -> dict[str, Any]:
    obj = store.read(environment().sessions_namespace, name) if is_dns_label(name) else None
    if obj is None or not visible_in_catalog(template_enabled(obj), admin=caller.is_admin):
        raise NotFound(f"template {name!r} not found")
    return template_to_api(obj)


def create_template(body: Mapping[str, Any], actor: Principal, client_ip: str = "") -> dict[str, Any]:
    manifest = template_from_api(body, None, environment().sessions_namespace)
    name = manifest["metadata"]["name"]
    _check_budget(name, manifest["spec"])
    try:
        created = store.create(manifest)
    except KubeError as exc:
        if exc.conflict:
            raise Conflict(f"template {name!r} already exists; PATCH it to change it",
                           error="template exists") from None
        raise
    _audit(actor, "template.create", name, client_ip)
    return template_to_api(created)


# A status write between our read and our write costs one more round; a controller writing status more
# often than that is a bug of its own, reported as a conflict.
STATUS_RACE_RETRIES = 3


def update_template(name: str, patch: Mapping[str, Any], actor: Principal, client_ip: str = "") -> dict[str, Any]:
    """Partial update (merge-patch semantics on the REST fields). The object is replaced under its
    resourceVersion, so an update racing another person's answers 409 instead of losing either. A race
    with a status write only (template-reconcile reports pools and pre-pull nodes all the time; the
    spec's generation is unchanged) is retried on the fresh copy: the admin changed nothing of it."""
    namespace = environment().sessions_namespace
    current = store.read(namespace, name) if is_dns_label(name) else None
    if current is None:
        raise NotFound(f"template {name!r} not found")
    read_generation = current["metadata"].get("generation")
    for attempt in range(STATUS_RACE_RETRIES + 1):
        updated = merge_template_patch(current, patch)
        updated.pop("status", None)
        _check_budget(name, updated["spec"])
        try:
            stored = store.replace(namespace, name, updated)
            break
        except KubeError as exc:
            if exc.not_found:
                raise NotFound(f"template {name!r} not found") from None
            if not exc.conflict:
                raise
            fresh = store.read(namespace, name)
            if fresh is None:
                raise NotFound(f"template {name!r} not found") from None
            if fresh["metadata"].get("generation") != read_generation or attempt == STATUS_RACE_RETRIES:
                raise Conflict(f"template {name!r} was changed by someone else; read it again and retry",
                               error="conflict") from None
            current = fresh
    details: dict[str, Any] = {"fields": sorted(patch)}
    if "enabled" in patch:  # taking a template out of use (or back) is what an auditor looks for
        details["enabled"] = template_to_api(stored)["enabled"]
    _audit(actor, "template.update", name, client_ip, details)
    return template_to_api(stored)


def delete_template(name: str, actor: Principal, client_ip: str = "") -> dict[str, Any]:
    if not is_dns_label(name) or not store.delete(environment().sessions_namespace, name):
        raise NotFound(f"template {name!r} not found")
    _audit(actor, "template.delete", name, client_ip)
    return {"message": f"template {name} deleted"}


def _check_budget(name: str, spec: Mapping[str, Any]) -> None:
    """A warm pool must fit the platform budget next to every other Template's (400 naming it)."""
    size = peak_size(spec.get("warmPool"))  # a scheduled pool must fit at its largest
    if size <= 0:
        return
    sizes = {str(t["metadata"]["name"]): peak_size((t.get("spec") or {}).get("warmPool"))
             for t in store.list_objects(environment().sessions_namespace)}
    problem = over_budget(sizes, name, size, int(platform_settings()[WARM_POOL_BUDGET]))
    if problem is not None:
        raise ValidationError("warmPool.size", problem)


def _audit(actor: Principal, action: str, name: str, client_ip: str, details: Mapping[str, Any] | None = None) -> None:
    with transaction() as conn:
        audit.record(conn, actor, action, "template", name, client_ip, details)
