"""What a Template is worth to its Sessions: its validity (phase and message, as template-reconcile
writes it to the Template's status and to template_index) and the spec a Session runs from.

Both reconcilers build on this: template-reconcile records a Template's validity and reconciles its
Sessions; session-reconcile resolves its Template here, from the index, without reading the cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamspace.domain.errors import ValidationError
from streamspace.domain.templates import env_reference_problems, parse_template_spec, validate_template_spec
from streamspace.records import record
from streamspace.settings.effective import load_config
from streamspace.templates import store as template_store

MESSAGE_LIMIT = 32768


@record
class Resolution:
    """A Session's Template: its parsed spec, or why there is none."""

    spec: Any  # streamspace.domain.templates.TemplateSpec when usable
    problem: str | None = None  # TemplateMissing | TemplateInvalid
    message: str = ""


def validate(spec: object) -> tuple[str, str]:
    """(phase, message) of a Template spec: Ready, or Invalid with every problem listed (including
    env entries reading a Secret or ConfigMap an admin has not marked for templates)."""
    problems = validate_template_spec(spec)
    if not problems:
        config = load_config()
        problems = env_reference_problems(parse_template_spec(spec).env, config.env_secrets,
                                          config.env_config_maps)
    if problems:
        return "Invalid", "; ".join(problems)[:MESSAGE_LIMIT]
    return "Ready", ""


def resolve_for_session(namespace: str, name: str, row: Mapping[str, Any] | None) -> Resolution:
    """The Template a Session names, from its index row; read from the cluster (and indexed) only
    when template-reconcile has not recorded it yet."""
    if row is None:
        obj = template_store.read(namespace, name)
        if obj is None:
            return Resolution(None, "TemplateMissing", f"template {name!r} does not exist in namespace {namespace}")
        meta = obj.get("metadata") or {}
        phase, message = validate(obj.get("spec"))
        template_store.upsert_index(namespace, name, str(meta.get("uid") or ""), int(meta.get("generation") or 0),
                                obj.get("spec"), phase, message)
        row = {"spec": obj.get("spec"), "phase": phase, "message": message}
    if row.get("phase") != "Ready":
        return Resolution(None, "TemplateInvalid", f"template {name!r} is invalid: {row.get('message') or ''}")
    try:
        return Resolution(parse_template_spec(row.get("spec")))
    except ValidationError as exc:  # validated under an older reader: treat as invalid
        return Resolution(None, "TemplateInvalid", f"template {name!r} is invalid: {exc}")
