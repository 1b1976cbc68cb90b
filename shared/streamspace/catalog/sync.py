"""Syncing template repositories into the catalog (the catalog-sync function's library; a service of
the catalog over `catalog.store`).

Which repositories: on the PingSource tick, those due (pending, explicitly requested, never
attempted, or last attempted more than SYNC_INTERVAL ago, and a sync left `syncing` by a crash);
on a sync-requested event, the one named (or all of them).

Each repository is synced on its own, under a lease taken with one conditional UPDATE: a sync
that crashed or timed out leaves an expired lease that the next sync takes over, and two
concurrent syncs of one repository never both run. Fetch (git), parse, then replace that
repository's catalog rows in ONE transaction that first checks the lease is still ours; the
status, file errors, template count and commit are written in the same transaction. A failure at
any step records `failed` with the reason and keeps the previous catalog rows. One repository
failing never stops the others.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from streamspace.catalog import store
from streamspace.catalog.credentials import SecretUnavailable, decrypt
from streamspace.catalog.git import FetchError, fetch
from streamspace.catalog.parse import CheckoutRefused, FileError, ParseResult, parse_checkout
from streamspace.catalog.urls import check_repository_url
from streamspace.config import environment
from streamspace.db import DatabaseUnavailable
from streamspace.domain.errors import ValidationError
from streamspace.events import PING_TYPE, SYNC_REQUESTED_TYPE, MalformedEvent
from streamspace.records import record

log = logging.getLogger("streamspace.catalog")

LEASE_SECONDS = 300  # longer than one repository's fetch (git timeout 120 s) + parse + write
TICK_BUDGET_SECONDS = 420  # stop starting new repositories after this (the function's timeout is 600 s)
FILE_ERRORS_STORED = 200
MAX_DUE_PER_TICK = 500


@record
class SyncOutcome:
    repository_id: str
    status: str  # synced | failed | busy (another sync holds the lease) | missing | lost (lease taken over)
    templates: int = 0
    file_errors: int = 0
    message: str = ""


@record
class Lease:
    repository_id: str
    owner: str
    started_at: datetime
    row: dict[str, Any]


def new_lease_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def acquire_lease(repository_id: str, owner: str, lease_seconds: float = LEASE_SECONDS) -> Lease | None:
    """Take the repository's sync lease when it is free or expired; None when another sync holds it
    (or the repository does not exist)."""
    row = store.take_lease(repository_id, owner, lease_seconds)
    if row is None:
        return None
    return Lease(str(row["id"]), owner, row["lease_started_at"], row)


def _stored_errors(errors: list[FileError]) -> list[dict[str, Any]]:
    return [e.as_json() for e in errors[:FILE_ERRORS_STORED]]


def replace_catalog(lease: Lease, result: ParseResult, commit: str) -> bool:
    """Make the repository's catalog rows exactly `result.templates` (install counts kept), and
    record success, in one transaction. False when the lease was lost (nothing written)."""
    return store.replace_templates(lease.repository_id, lease.owner, lease.started_at,
                                   [t.row() for t in result.templates], _stored_errors(result.errors),
                                   len(result.errors), commit)


def record_failure(lease: Lease, message: str, errors: list[FileError] | None = None) -> bool:
    """Record `failed` with the reason; the catalog rows stay as they were."""
    return store.record_failure(lease.repository_id, lease.owner, lease.started_at, message[:2000],
                                None if errors is None else _stored_errors(errors),
                                0 if errors is None else len(errors))


def _fetch_and_parse(lease: Lease, workdir: Path, git_timeout: float) -> tuple[ParseResult, str]:
    row = lease.row
    parsed, addresses = check_repository_url(row["url"])  # again at sync time: DNS answers change
    secret = decrypt(row["auth_secret"]) if row["auth_secret"] is not None else None
    fetched = fetch(parsed, row["branch"], workdir, addresses=addresses, auth_type=row["auth_type"], secret=secret,
                    allow_file=environment().catalog_allow_file_urls, timeout=git_timeout)
    return parse_checkout(fetched.checkout), fetched.commit


def sync_repository(repository_id: str, *, owner: str | None = None, lease_seconds: float = LEASE_SECONDS,
                    git_timeout: float = 120) -> SyncOutcome:
    owner = owner or new_lease_owner()
    lease = acquire_lease(repository_id, owner, lease_seconds)
    if lease is None:
        return SyncOutcome(repository_id, "busy" if store.repository_exists(repository_id) else "missing")
    name = lease.row["name"]
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="ss-catalog-") as tmp:
            result, commit = _fetch_and_parse(lease, Path(tmp), git_timeout)
    except (ValidationError, FetchError, CheckoutRefused, SecretUnavailable) as exc:
        message = exc.message
        record_failure(lease, message)
        log.warning("catalog sync failed", extra={"repository": name, "reason": message})
        return SyncOutcome(repository_id, "failed", message=message)
    except DatabaseUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - one repository's surprise must not stop the others
        log.exception("catalog sync crashed", extra={"repository": name})
        message = f"internal error while syncing ({type(exc).__name__}); see the catalog-sync logs"
        record_failure(lease, message)
        return SyncOutcome(repository_id, "failed", message=message)
    if not result.templates:
        message = (f"no valid Template manifests found on branch {lease.row['branch']}"
                   + (f" ({len(result.errors)} file errors)" if result.errors else "")
                   + "; the previous catalog is kept")
        record_failure(lease, message, result.errors)
        log.warning("catalog sync found no templates", extra={"repository": name, "fileErrors": len(result.errors)})
        return SyncOutcome(repository_id, "failed", 0, len(result.errors), message)
    if not replace_catalog(lease, result, commit):
        log.warning("catalog sync lost its lease; results discarded", extra={"repository": name})
        return SyncOutcome(repository_id, "lost", message="the lease was taken over")
    log.info("catalog synced", extra={"repository": name, "templates": len(result.templates),
                                      "fileErrors": len(result.errors), "commit": commit,
                                      "seconds": round(time.perf_counter() - started, 3)})
    return SyncOutcome(repository_id, "synced", len(result.templates), len(result.errors))


def due_repositories(interval_seconds: int) -> list[str]:
    return store.due_repository_ids(interval_seconds, MAX_DUE_PER_TICK)


def _sync_each(ids: list[str], budget_seconds: float) -> list[SyncOutcome]:
    outcomes: list[SyncOutcome] = []
    started = time.monotonic()
    for repository_id in ids:
        if time.monotonic() - started > budget_seconds:
            log.info("catalog sync budget used; the next tick continues", extra={"left": len(ids) - len(outcomes)})
            break
        outcomes.append(sync_repository(repository_id))
    return outcomes


def sync_due(budget_seconds: float = TICK_BUDGET_SECONDS) -> list[SyncOutcome]:
    """The PingSource tick: every due repository, each on its own."""

    return _sync_each(due_repositories(environment().sync_interval_seconds), budget_seconds)


def sync_all(budget_seconds: float = TICK_BUDGET_SECONDS) -> list[SyncOutcome]:
    """A request for all repositories: every one whose lease is free, due or not."""
    return _sync_each(store.all_repository_ids(), budget_seconds)


def handle_event(event: Any) -> list[SyncOutcome]:
    """The catalog-sync function: a PingSource tick or a sync-requested event."""

    event_type = str(event["type"])
    if event_type == PING_TYPE:
        outcomes = sync_due()
    elif event_type == SYNC_REQUESTED_TYPE:
        data = event.get_data() if hasattr(event, "get_data") else getattr(event, "data", None)
        if isinstance(data, (bytes, str)):
            try:
                data = json.loads(data or "{}")
            except ValueError:
                raise MalformedEvent("sync-requested data is not JSON") from None
        if not isinstance(data, dict):
            raise MalformedEvent('sync-requested data must be {"repositoryId": "<uuid>"} or {"all": true}')
        repository_id = data.get("repositoryId")
        if repository_id is not None:
            try:
                repository_id = str(uuid.UUID(str(repository_id)))
            except ValueError:
                raise MalformedEvent(f"repositoryId {repository_id!r} is not a UUID") from None
            outcomes = [sync_repository(repository_id)]
        elif data.get("all") is True:
            outcomes = sync_all()
        else:
            raise MalformedEvent('sync-requested data must be {"repositoryId": "<uuid>"} or {"all": true}')
    else:
        raise MalformedEvent(f"catalog-sync does not handle events of type {event_type!r}")
    summary: dict[str, int] = {}
    for outcome in outcomes:
        summary[outcome.status] = summary.get(outcome.status, 0) + 1
    log.info("catalog-sync done", extra={"type": event_type, "outcomes": summary})
    return outcomes
