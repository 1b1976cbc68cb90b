"""The templates store: the only code of the library that speaks to a Template's storage, its object
on the API server and its `template_index` row (the REST API, the session API and warm pools, the
reconcilers, catalog installs and backups all come here; `tests/test_architecture.py` keeps it so).

A Template's source of truth is its object on the API server (there is no Template table); the
`template_index` row is what template-reconcile last validated of it (uid, generation, spec, phase,
message), which session reconciles read instead of the cluster. Names reach here validated (the
service checks them first), so nothing odd is put in a path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from streamspace import kube
from streamspace.db import execute, fetch_all, fetch_one

# -- Template objects (the API server) ------------------------------------------------------------


def watched(namespace: str) -> kube.WatchedList:
    """The process's watched list of the namespace's Templates (one LIST, then a watch)."""
    return kube.watched_list("Template", namespace)


def list_objects(namespace: str) -> list[dict[str, Any]]:
    return kube.list_objects("Template", namespace)


def read(namespace: str, name: str) -> dict[str, Any] | None:
    return kube.get("Template", name, namespace)


def create(manifest: dict[str, Any]) -> dict[str, Any]:
    return kube.create(manifest)


def apply(manifest: dict[str, Any], *, force: bool) -> dict[str, Any]:
    """Server-side apply of a whole Template manifest (a catalog install, a backup's restore);
    `force=False`: a field another manager set is a 409 naming it instead of being taken over."""
    return kube.apply(manifest, force=force)


def apply_status(namespace: str, name: str, status: dict[str, Any], *, resource_version: str | None) -> bool:
    """Server-side apply of a Template's status on exactly `resource_version` (KubeError.conflict when it
    changed since); False when the Template is gone."""
    return kube.apply_status("Template", name, namespace, status, resource_version=resource_version)


def replace(namespace: str, name: str, obj: dict[str, Any]) -> dict[str, Any]:
    """PUT the whole object: refused with a conflict when its resourceVersion is no longer current."""
    stored: dict[str, Any] = kube.request("PUT", kube.KINDS["Template"].path(namespace, name), body=obj)
    return stored


def delete(namespace: str, name: str) -> bool:
    """False when there was no such Template."""
    return kube.delete("Template", name, namespace)


# -- the template index (Postgres) ----------------------------------------------------------------

# The index row of the Template `%(template)s` in namespace `%(ns)s` as one JSON value (NULL: none),
# for a caller that puts it into a statement of its own (the session reconcile's context, one round
# trip).
INDEX_ROW_SUBQUERY = ("(SELECT to_jsonb(t) FROM template_index t"
                      " WHERE t.namespace = %(ns)s AND t.name = %(template)s)")


def index_row(namespace: str, name: str) -> dict[str, Any] | None:
    found = fetch_one("SELECT to_jsonb(t) AS t FROM template_index t WHERE namespace = %s AND name = %s",
                      (namespace, name))
    return found["t"] if found else None


def index_rows(namespace: str) -> dict[str, dict[str, Any]]:
    """Every index row of the namespace, by Template name."""
    return {r["t"]["name"]: r["t"] for r in fetch_all(
        "SELECT to_jsonb(t) AS t FROM template_index t WHERE namespace = %s", (namespace,))}


def upsert_index(namespace: str, name: str, uid: str | None, generation: int, spec: Any, phase: str,
                 message: str, *, replaces: str | None = None, sessions_due: bool = False) -> bool:
    """Write a Template's index row (what new sessions of it are built from). Keyed by uid and
    generation: a row of the same Template at a newer generation, or of another Template of the name
    (unless it is `replaces`, the one the caller found gone from the cluster), is left alone: False.
    `sessions_due`: what its Sessions see of it changed, and they are not all reconciled yet; a
    due fan-out stays due until `sessions_reconciled` records it done."""
    return execute(
        "INSERT INTO template_index (namespace, name, uid, generation, spec, phase, message, sessions_due)"
        " VALUES (%(ns)s, %(name)s, %(uid)s, %(generation)s, %(spec)s::jsonb, %(phase)s, %(message)s, %(due)s)"
        " ON CONFLICT (namespace, name) DO UPDATE SET uid = EXCLUDED.uid, generation = EXCLUDED.generation,"
        "  spec = EXCLUDED.spec, phase = EXCLUDED.phase, message = EXCLUDED.message, updated_at = now(),"
        "  sessions_due = template_index.sessions_due OR EXCLUDED.sessions_due"
        " WHERE (template_index.uid IS NOT DISTINCT FROM EXCLUDED.uid"
        "        AND template_index.generation <= EXCLUDED.generation)"
        "    OR (template_index.uid IS DISTINCT FROM EXCLUDED.uid AND template_index.uid = %(replaces)s)",
        {"ns": namespace, "name": name, "uid": uid, "generation": generation,
         "spec": json.dumps(spec if spec is not None else {}), "phase": phase, "message": message,
         "replaces": replaces, "due": sessions_due}) > 0


def sessions_reconciled(namespace: str, name: str, indexed: Mapping[str, Any]) -> bool:
    """Record that every Session of the Template was reconciled against the index row `indexed`
    (uid, spec, phase, message as the fan-out started from them). A row that changed since is left
    due: Sessions reconciled before the change may have missed it, and the change's own fan-out runs."""
    return execute(
        "UPDATE template_index SET sessions_due = false"
        " WHERE namespace = %(ns)s AND name = %(name)s AND sessions_due AND uid IS NOT DISTINCT FROM %(uid)s"
        "   AND spec = %(spec)s::jsonb AND phase = %(phase)s AND message = %(message)s",
        {"ns": namespace, "name": name, "uid": indexed.get("uid"),
         "spec": json.dumps(indexed.get("spec") if indexed.get("spec") is not None else {}),
         "phase": indexed.get("phase"), "message": indexed.get("message")}) > 0


def delete_index(namespace: str, name: str, uid: str | None = None) -> bool:
    """Drop a Template's index row; with `uid`, only that Template's (not a successor's of the name)."""
    return execute("DELETE FROM template_index WHERE namespace = %s AND name = %s"
                   " AND (%s::text IS NULL OR uid IS NULL OR uid = %s)", (namespace, name, uid, uid)) > 0
