"""Browsing the catalog (any user) and installing a catalog template into the cluster (admin): a
service of the catalog over `catalog.store`.

Search `q`: full text over name, displayName, description and tags through the stored `search`
tsvector ('simple' configuration: no stemming, so product names match as typed), each word also
as a prefix (`fire` finds Firefox), plus a substring fallback on name and displayName. Results are
ordered by install count (most installed first), then name.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from streamspace import audit, kube
from streamspace.catalog import store
from streamspace.catalog.repositories import parse_id
from streamspace.config import environment
from streamspace.db import transaction
from streamspace.domain.conversion import CONVERSION_NOTES_ANNOTATION, ORIGINAL_NAME_ANNOTATION
from streamspace.domain.errors import Conflict, NotFound, ValidationError
from streamspace.domain.templates import normalise_template_manifest, template_to_api
from streamspace.templates import store as template_store

if TYPE_CHECKING:
    from streamspace.auth.principal import Principal

MAX_QUERY_LENGTH = 200
MAX_QUERY_WORDS = 8
CATALOG_LABEL = "stream.space/catalog-template"


def template_json(row: dict[str, Any]) -> dict[str, Any]:
    """The contract's CatalogTemplate object, plus what converting the repository's file changed
    (`originalName` when the name broke the name rule, `conversionNotes`)."""
    annotations = ((row["manifest"] or {}).get("metadata") or {}).get("annotations") or {}
    notes = annotations.get(CONVERSION_NOTES_ANNOTATION)
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "displayName": row["display_name"],
        "description": row["description"],
        "category": row["category"],
        "appType": row["app_type"],
        "icon": row["icon"],
        "manifest": row["manifest"],
        "tags": list(row["tags"] or []),
        "installCount": row["install_count"],
        "originalName": annotations.get(ORIGINAL_NAME_ANNOTATION),
        "conversionNotes": notes.splitlines() if isinstance(notes, str) else [],
        "repository": {"id": str(row["repository_id"]), "name": row["repository_name"], "url": row["repository_url"]},
    }


def _text_param(value: str | None, field: str, limit: int = 128) -> str | None:
    if value is None:
        return None
    if len(value) > limit or any(ord(c) < 32 for c in value):
        raise ValidationError(field, f"at most {limit} printable characters")
    return value


def list_templates(*, category: str | None, tag: str | None, q: str | None, repository: str | None,
                   limit: int, offset: int) -> dict[str, Any]:
    """GET /templates -> {templates, total}: one statement (the total rides along as a window count)."""
    category = _text_param(category, "category")
    tag = _text_param(tag, "tag", 64)
    q = _text_param(q, "q", MAX_QUERY_LENGTH)
    words = re.findall(r"\w+", q.lower())[:MAX_QUERY_WORDS] if q is not None else []
    rows, total = store.template_page(category=category, tag=tag,
                                      repository_id=None if repository is None else parse_id(repository),
                                      query=q, prefixes=words, limit=limit, offset=offset)
    return {"templates": [template_json(r) for r in rows], "total": total}


def get_template(template_id: str) -> dict[str, Any]:
    row = store.template(parse_id(template_id, "catalog template"))
    if row is None:
        raise NotFound(f"catalog template {template_id} not found")
    return row


def install_template(template_id: str, caller: Principal, client_ip: str, *, overwrite: bool = False) -> dict[str, Any]:
    """Create or update the Template object in the StreamSpace namespace (server-side apply), count
    the install -> the REST Template JSON of the object as the cluster stored it.

    The apply is not forced: installing again over a Template someone changed by other means (kubectl,
    GitOps) would silently undo their change, so that is a Conflict naming the fields unless the admin
    asks to `overwrite`."""

    row = get_template(template_id)
    manifest = normalise_template_manifest(row["manifest"])  # today's rules, even for an old sync
    metadata = manifest["metadata"]
    metadata["namespace"] = environment().sessions_namespace
    labels = dict(metadata.get("labels") or {})
    labels[CATALOG_LABEL] = "true"
    labels["app.kubernetes.io/managed-by"] = "streamspace"
    metadata["labels"] = labels
    annotations = dict(metadata.get("annotations") or {})
    annotations["stream.space/catalog-repository"] = str(row["repository_name"])
    annotations["stream.space/catalog-id"] = str(row["id"])
    metadata["annotations"] = annotations
    try:
        applied = template_store.apply(manifest, force=overwrite)
    except kube.KubeError as exc:
        if exc.status != 409:
            raise
        raise Conflict(f"Template {metadata['name']} was changed outside the catalog ({exc.message}); install "
                       f"with overwrite=true to replace those changes", error="template changed") from None
    with transaction() as conn:
        store.count_install(conn, row["id"])
        audit.record(conn, caller, "catalog.template.install", "template", metadata["name"], client_ip,
                     {"catalogId": str(row["id"]), "repository": row["repository_name"]})
    return template_to_api(applied)
