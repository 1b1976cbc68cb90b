"""Template repositories as the admin manages them: records, credentials, sync requests (a service
of the catalog over `catalog.store`).

A sync request is recorded in the row (`sync_requested_at`) and then announced with a CloudEvent
to the broker. The event makes it fast; the row makes it certain: without K_SINK, or when the
event is lost, the next catalog-sync tick finds the request and honours it.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from streamspace import audit
from streamspace.catalog import store
from streamspace.catalog.credentials import check_auth, encrypt
from streamspace.catalog.git import check_branch
from streamspace.catalog.urls import check_repository_url
from streamspace.db import transaction
from streamspace.domain.errors import NotFound, ValidationError
from streamspace.events import SYNC_REQUESTED_TYPE, emit

if TYPE_CHECKING:
    from streamspace.auth.principal import Principal

EVENT_SOURCE = "/streamspace/catalog"
MAX_NAME_LENGTH = 100
FILE_ERRORS_SHOWN = 100
REPOSITORY_FIELDS = frozenset({"name", "url", "branch", "authType", "authSecret"})

def parse_id(value: str, what: str = "repository") -> str:
    """A path id -> canonical UUID text; anything else is simply not found."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise NotFound(f"{what} {value!r} not found") from None


def repository_json(row: dict[str, Any]) -> dict[str, Any]:
    """The contract's Repository object plus the sync details an admin needs. Never the secret."""
    errors = row.get("file_errors") or []
    if isinstance(errors, str):
        errors = json.loads(errors)
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "url": row["url"],
        "branch": row["branch"],
        "authType": row["auth_type"],
        "status": row["status"],
        "errorMessage": row["error_message"] or "",
        "lastSync": row["last_sync"],
        "lastAttempt": row["last_attempt_at"],
        "lastCommit": row["last_commit"],
        "templateCount": row["template_count"],
        "syncRequested": row["sync_requested_at"] is not None,
        "fileErrorCount": row["file_error_count"],
        "fileErrors": errors[:FILE_ERRORS_SHOWN],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


def repository_summary(row: dict[str, Any]) -> dict[str, Any]:
    """What any user may see of a repository (where the catalog's templates come from): no
    authentication details, no sync internals. URLs never hold credentials (refused at add time)."""
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "url": row["url"],
        "status": row["status"],
        "templateCount": row["template_count"],
        "lastSync": row["last_sync"],
    }


def list_repositories(limit: int, offset: int, *, details: bool = True) -> dict[str, Any]:
    """A page of repositories: with sync details for admins (`details`), the summary for anyone else."""
    rows, total = store.repository_page(limit, offset)
    view = repository_json if details else repository_summary
    return {"repositories": [view(r) for r in rows], "total": total}


def get_repository(repository_id: str) -> dict[str, Any]:
    row = store.repository(parse_id(repository_id))
    if row is None:
        raise NotFound(f"repository {repository_id} not found")
    return repository_json(row)


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("name", "required: a short name for the repository")
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValidationError("name", f"at most {MAX_NAME_LENGTH} printable characters")
    return name


def add_repository(body: dict[str, Any], caller: Principal, client_ip: str) -> dict[str, Any]:
    """Validate, store (secret encrypted), request the first sync -> {id, message}."""
    name = _check_name(body.get("name"))
    parsed, _ = check_repository_url(body.get("url"))
    branch = check_branch(body.get("branch"))
    auth_type, secret = check_auth(body.get("authType"), body.get("authSecret"), parsed.scheme)
    sealed = encrypt(secret) if secret else None  # SecretUnavailable (503) when the key is unusable
    with transaction() as conn:
        repository_id = store.insert_repository(conn, name, parsed.raw, parsed.normalized, branch, auth_type, sealed)
        audit.record(conn, caller, "catalog.repository.add", "repository", name, client_ip,
                     {"id": repository_id, "url": parsed.raw, "branch": branch, "authType": auth_type})
    announce_sync(repository_id)
    return {"id": repository_id, "message": f"repository {name} added; sync requested", "status": "pending"}


def delete_repository(repository_id: str, caller: Principal, client_ip: str) -> dict[str, Any]:
    """Delete the repository and its catalog rows. Templates already installed stay in the cluster."""
    repository_id = parse_id(repository_id)
    with transaction() as conn:
        row = store.delete_repository(conn, repository_id)
        if row is None:
            raise NotFound(f"repository {repository_id} not found")
        audit.record(conn, caller, "catalog.repository.delete", "repository", row["name"], client_ip,
                     {"id": repository_id, "url": row["url"]})
    return {"message": f"repository {row['name']} deleted"}


def announce_sync(repository_id: str | None, source: str = EVENT_SOURCE) -> bool:
    """Tell catalog-sync now (a hint: the recorded request is what counts)."""

    data: dict[str, Any] = {"repositoryId": repository_id} if repository_id else {"all": True}
    return emit(SYNC_REQUESTED_TYPE, source, data, subject=f"repositories/{repository_id or 'all'}")


def request_sync(repository_id: str | None, caller: Principal, client_ip: str) -> dict[str, Any]:
    """POST /repositories/{id}/sync and POST /sync -> 202 body."""
    ids = store.request_sync(None if repository_id is None else [parse_id(repository_id)])
    if repository_id is not None and not ids:
        raise NotFound(f"repository {repository_id} not found")
    with transaction() as conn:
        audit.record(conn, caller, "catalog.repository.sync", "repository", repository_id or "*", client_ip,
                     {"repositories": len(ids)})
    announce_sync(ids[0] if repository_id is not None else None)
    what = "repository" if repository_id is not None else f"{len(ids)} repositories"
    return {"message": f"sync requested for {what}", "status": "syncing", "repositories": len(ids)}
