"""Backups of the database and of the cluster's Templates and Sessions to the object store, and restore.

A run: take the lease (one run at a time), stream a consistent `pg_dump` to
`<prefix>backups/<id>/database.pgdump` as a multipart upload, export the Templates and Sessions to
`cluster.json`, then write `manifest.json` last with each object's size and SHA-256. A backup without
its manifest is incomplete and never restored. Retention runs only after a run succeeded.

A restore reads the manifest, verifies every object's SHA-256 before touching the target database,
restores into an empty database in one transaction, then server-side applies the Templates and Sessions.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from streamspace import audit, kube, objectstore
from streamspace.backups import postgres, store
from streamspace.config import environment
from streamspace.db import connect, database_url, transaction
from streamspace.domain.errors import Conflict, DomainError, ErrorKind, Invalid, NotFound, Unavailable
from streamspace.domain.retention import backups_to_keep
from streamspace.events import PING_TYPE, MalformedEvent, emit
from streamspace.records import record
from streamspace.templates import store as template_store

log = logging.getLogger("streamspace.backups")

FORMAT = 1
FOLDER = "backups"
BACKUP_REQUESTED_TYPE = "io.streamspace.backup.requested"
EVENT_SOURCE = "/streamspace/storage"
FAILED_KEPT_DAYS = 30  # failed runs stay listed this long (and their leftovers are removed then)
_ID_CHARS = set("0123456789abcdefTZ-")


class BackupFailed(DomainError):
    """A run failed (recorded with its reason); it is not retried by the broker: the next trigger runs again."""

    kind = ErrorKind.UNAVAILABLE
    default_error = "backup failed"
    retryable = False


class ChecksumMismatch(DomainError):
    kind = ErrorKind.INVALID
    default_error = "checksum mismatch"


def new_id(now: datetime | None = None) -> str:
    moment = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{moment}-{secrets.token_hex(3)}"


def parse_id(raw: str) -> str:
    """A backup id from an id, its folder or its manifest key (with or without the prefix)."""
    text = raw.strip().rstrip("/")
    if text.endswith("/manifest.json"):
        text = text[: -len("/manifest.json")]
    backup_id = text.rsplit("/", 1)[-1]
    if not (16 <= len(backup_id) <= 40) or not set(backup_id) <= _ID_CHARS:
        raise Invalid(f"{raw!r} is not a backup id such as 20261201T020000Z-a1b2c3 or its manifest key",
                      error="invalid backup id")
    return backup_id


def folder(backup_id: str) -> str:
    return objectstore.key(FOLDER, backup_id) + "/"


# -- one run -----------------------------------------------------------------------------------------

@record
class Lease:
    """The held backup lease: a dedicated connection holding a session-level advisory lock."""

    conn: Any


def _lease_connection() -> Any:
    return connect(database_url(), connect_timeout=10)  # (unreachable: DatabaseUnavailable)


def run_backup(trigger: str, requested_by: str | None = None) -> dict[str, Any]:
    """One backup run; Conflict when another run holds the lease, BackupFailed (recorded) when it fails."""
    objectstore.configured()
    conn = _lease_connection()
    try:
        if not store.try_lease(conn):
            raise Conflict("a backup is already running; this trigger was skipped", error="backup running")
        try:
            return _run(trigger, requested_by)
        finally:
            store.release_lease(conn)
    finally:
        conn.close()


def _run(trigger: str, requested_by: str | None) -> dict[str, Any]:
    store.mark_interrupted()
    backup_id = new_id()
    base = folder(backup_id)
    store.insert_running(backup_id, trigger, requested_by, base + "manifest.json")
    log.info("backup started", extra={"backup": backup_id, "trigger": trigger})
    try:
        database = objectstore.upload_stream(base + "database.pgdump", postgres.dump(database_url()))
        exported = export_cluster()
        cluster = objectstore.put_bytes(base + "cluster.json", json.dumps(exported, sort_keys=True).encode())
        manifest = {
            "format": FORMAT, "id": backup_id, "createdAt": datetime.now(UTC).isoformat(),
            "namespace": exported["namespace"],
            "objects": {name: {"key": w.key.rsplit("/", 1)[-1], "size": w.size, "sha256": w.sha256}
                        for name, w in (("database", database), ("cluster", cluster))},
            "counts": {"templates": len(exported["templates"]), "sessions": len(exported["sessions"])},
        }
        objectstore.put_bytes(base + "manifest.json", json.dumps(manifest, indent=2, sort_keys=True).encode())
    except Exception as exc:  # noqa: BLE001 - any failure is recorded, then reported
        reason = str(exc) or type(exc).__name__
        store.finish_failed(backup_id, reason)
        _remove_quietly(base)
        log.error("backup failed", extra={"backup": backup_id, "reason": reason})
        raise BackupFailed(f"backup {backup_id} failed: {reason}") from exc
    store.finish_succeeded(backup_id, database.size + cluster.size, database.sha256,
                           len(exported["templates"]), len(exported["sessions"]))
    log.info("backup succeeded", extra={"backup": backup_id, "bytes": database.size + cluster.size})
    removed = apply_retention()
    row = store.get(backup_id)
    if row is None:
        raise RuntimeError("invariant broken: row is None")
    return {**describe(row), "retentionRemoved": removed}


def _remove_quietly(prefix: str) -> None:
    try:
        objectstore.delete_keys([o["Key"] for o in objectstore.list_keys(prefix)])
    except DomainError as exc:  # the store is down: the failed run's leftovers go with its row later
        log.warning("could not remove a failed backup's objects", extra={"prefix": prefix, "reason": str(exc)})


def apply_retention() -> list[str]:
    """Delete the successful backups the policy no longer keeps, and failed runs older than
    FAILED_KEPT_DAYS. Called only after a run succeeded."""
    keep_policy = environment().backup_keep
    done = store.succeeded()
    keep = backups_to_keep([(r["id"], r["started_at"]) for r in done], daily=keep_policy.daily,
                           weekly=keep_policy.weekly, monthly=keep_policy.monthly)
    removed = []
    for row in [r for r in done if r["id"] not in keep] + store.failed_before(FAILED_KEPT_DAYS):
        try:
            _delete_objects(row["id"])
        except DomainError as exc:
            log.warning("retention could not delete a backup; the next run tries again",
                        extra={"backup": row["id"], "reason": str(exc)})
            continue
        store.delete(row["id"])
        removed.append(row["id"])
    if removed:
        log.info("retention removed backups", extra={"backups": removed})
    return removed


def _delete_objects(backup_id: str) -> None:
    # The manifest first: a backup is never left looking complete while its parts are going.
    base = folder(backup_id)
    objectstore.delete_keys([base + "manifest.json"])
    objectstore.delete_keys([o["Key"] for o in objectstore.list_keys(base)])


# -- the cluster's part ------------------------------------------------------------------------------

_KEPT_METADATA = ("name", "namespace", "labels", "annotations")


def _portable(obj: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k in _KEPT_METADATA and v}
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": meta, "spec": obj.get("spec", {})}


def export_cluster() -> dict[str, Any]:
    """The Templates and Sessions of the sessions namespace, without server-set fields."""

    namespace = environment().sessions_namespace
    return {
        "format": FORMAT, "namespace": namespace,
        "templates": [_portable(o) for o in template_store.list_objects(namespace)],
        "sessions": [_portable(o) for o in kube.list_objects("Session", namespace)],
    }


def reapply_cluster(exported: dict[str, Any], namespace: str) -> dict[str, int]:
    """Server-side apply the exported Templates, then Sessions, into `namespace`."""

    for obj in exported.get("templates", []):
        template_store.apply({**obj, "metadata": {**obj["metadata"], "namespace": namespace}}, force=True)
    for obj in exported.get("sessions", []):
        kube.apply({**obj, "metadata": {**obj["metadata"], "namespace": namespace}})
    return {plural: len(exported.get(plural, [])) for plural in ("templates", "sessions")}


# -- restore -----------------------------------------------------------------------------------------

def read_manifest(backup_id: str) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads(objectstore.read_bytes(folder(backup_id) + "manifest.json"))
    except NotFound:
        raise NotFound(f"backup {backup_id} has no manifest in the object store: it does not exist or never "
                       "completed", error="backup not found") from None
    except ValueError:
        raise ChecksumMismatch(f"backup {backup_id}: manifest.json is not valid JSON") from None
    if manifest.get("format") != FORMAT or manifest.get("id") != backup_id:
        raise Invalid(f"backup {backup_id}: manifest of another format or backup", error="unsupported backup")
    return manifest


def _verified(backup_id: str, manifest: dict[str, Any], part: str, expected: str | None = None) -> str:
    """Read the part whole (streamed) and compare its SHA-256 with the manifest; returns its ETag."""
    entry = manifest["objects"][part]
    key = folder(backup_id) + entry["key"]
    digest, size, etag = objectstore.sha256_of(key)
    for name, wanted in (("manifest", entry["sha256"]), ("--sha256", expected)):
        if wanted is not None and digest != wanted:
            raise ChecksumMismatch(f"checksum mismatch for {key}: the {name} says sha256 {wanted}, the object has "
                                   f"{digest} ({size} bytes); it is corrupt or was tampered with, nothing was restored")
    return etag


def restore(raw_key: str, database_url: str, *, force: bool = False, expected_sha256: str | None = None,
            namespace: str | None = None, apply_cluster: bool = True,
            announce: Callable[[str], None] = print) -> dict[str, Any]:
    """Verify, restore the database, re-apply the cluster objects. Nothing is changed when a check fails."""
    backup_id = parse_id(raw_key)
    postgres.check_url(database_url)
    manifest = read_manifest(backup_id)
    database_etag = _verified(backup_id, manifest, "database", expected_sha256)
    _verified(backup_id, manifest, "cluster")
    cluster_key = folder(backup_id) + manifest["objects"]["cluster"]["key"]
    exported = json.loads(objectstore.read_bytes(cluster_key))
    announce(f"backup {backup_id}: checksums verified")
    postgres.require_empty(database_url, force)
    database_key = folder(backup_id) + manifest["objects"]["database"]["key"]
    postgres.restore(database_url, _same_bytes(database_key, database_etag, manifest["objects"]["database"]["sha256"]),
                     clean=force)
    objects = manifest["objects"]
    store.mark_restored_from(database_url, backup_id, objects["database"]["size"] + objects["cluster"]["size"],
                             objects["database"]["sha256"], manifest["counts"]["templates"],
                             manifest["counts"]["sessions"])
    announce(f"database restored from {database_key}")
    counts = {"templates": 0, "sessions": 0}
    if apply_cluster:
        counts = reapply_cluster(exported, namespace or environment().sessions_namespace)
        announce(f"re-applied {counts['templates']} Templates and {counts['sessions']} Sessions")
    return {"id": backup_id, **counts}


def _same_bytes(key: str, etag: str, sha256: str) -> Iterator[bytes]:
    """The object again, only the version verified (If-Match on its ETag), hashed again on the way:
    a change between the check and the restore fails the restore's single transaction."""
    import hashlib

    digest = hashlib.sha256()
    for chunk in objectstore.read_stream(key, if_match=etag or None):
        digest.update(chunk)
        yield chunk
    if digest.hexdigest() != sha256:
        raise ChecksumMismatch(f"checksum mismatch for {key}: it changed while it was restored")


def list_stored() -> list[dict[str, Any]]:
    """Backups complete in the object store (their manifests), newest first: what a restore can use
    when the database is gone."""
    prefix = objectstore.key(FOLDER) + "/"
    found = []
    for obj in objectstore.list_keys(prefix):
        if obj["Key"].endswith("/manifest.json"):
            found.append({"id": obj["Key"][len(prefix):].split("/", 1)[0], "key": obj["Key"],
                          "lastModified": obj["LastModified"].isoformat()})
    return sorted(found, key=lambda item: item["id"], reverse=True)


def last_run_failed() -> dict[str, float]:
    """Gauge streamspace_backup_last_run_failed by bucket: 1 when the newest run failed (alert on it)."""
    outcomes = store.last_outcomes()
    return {_bucket_label(): 1.0 if outcomes.get("last_status") == "failed" else 0.0}


def last_success_timestamp() -> dict[str, float]:
    """Gauge streamspace_backup_last_success_timestamp_seconds by bucket (0: never)."""
    last_success = store.last_outcomes().get("last_success")
    return {_bucket_label(): last_success.timestamp() if last_success else 0.0}


def _bucket_label() -> str:
    s3 = environment().s3
    return s3.bucket if s3 is not None else ""


# -- triggers ----------------------------------------------------------------------------------------

def handle_event(event: Any) -> None:
    """The backup function: a PingSource tick for task `backup`, or a backup-requested event. A trigger
    while a run holds the lease is acknowledged and skipped (the running one is the backup)."""

    try:
        event_type = event["type"]
    except KeyError:
        event_type = None
    data = event.get_data() if hasattr(event, "get_data") else None
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data) if data.strip() else None
        except ValueError:
            raise MalformedEvent("the event's data is not JSON") from None
    if event_type == PING_TYPE:
        if isinstance(data, dict) and data.get("task") not in (None, "backup"):
            raise MalformedEvent(f"this ping is for task {data.get('task')!r}, not 'backup'")
        trigger, requested_by = "schedule", None
    elif event_type == BACKUP_REQUESTED_TYPE:
        requested = data.get("requestedBy") if isinstance(data, dict) else None
        trigger, requested_by = "api", str(requested)[:200] if requested else None
    else:
        raise MalformedEvent(f"backup runs on {PING_TYPE} and {BACKUP_REQUESTED_TYPE} events, not {event_type!r}")
    if trigger == "schedule" and environment().s3 is None:
        log.info("no object store configured (S3_BUCKET): the scheduled backup is skipped")
        return
    try:
        run_backup(trigger, requested_by)
    except Conflict as exc:
        log.info("backup trigger skipped", extra={"trigger": trigger, "reason": str(exc)})


# -- the admin API -----------------------------------------------------------------------------------

def describe(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"], "status": row["status"], "trigger": row["trigger"], "requestedBy": row["requested_by"],
        "startedAt": row["started_at"].isoformat(),
        "finishedAt": row["finished_at"].isoformat() if row["finished_at"] else None,
        "key": row["manifest_key"], "sizeBytes": row["size_bytes"], "sha256": row["sha256"],
        "templates": row["templates"], "sessions": row["sessions"], "error": row["error"],
    }


def list_backups(limit: int = 100) -> list[dict[str, Any]]:
    return [describe(r) for r in store.list_recent(limit)]


def delete_backup(raw_id: str, caller: Any, client_ip: str) -> None:
    backup_id = parse_id(raw_id)
    row = store.get(backup_id)
    if row is None:
        raise NotFound(f"backup {backup_id} not found", error="backup not found")
    if row["status"] == "running":
        raise Conflict(f"backup {backup_id} is still running", error="backup running")
    objectstore.configured()
    _delete_objects(backup_id)
    with transaction() as conn:
        store.delete(backup_id, conn)
        audit.record(conn, caller, "backup.delete", "backup", backup_id, client_ip, {"status": row["status"]})


def request_backup(caller: Any, client_ip: str) -> dict[str, Any]:
    """POST /admin/backups: ask the backup function for a run now (a CloudEvent through the broker)."""

    objectstore.configured()
    if store.lease_held_elsewhere():
        raise Conflict("a backup is already running", error="backup running")
    with transaction() as conn:
        audit.record(conn, caller, "backup.request", "backup", "*", client_ip, {})
    if not emit(BACKUP_REQUESTED_TYPE, EVENT_SOURCE, {"requestedBy": caller.username}, subject="backups"):
        raise Unavailable("the backup could not be requested: the event broker did not accept it",
                          error="broker unavailable")
    return {"status": "requested", "message": "a backup run was requested; GET /api/v1/admin/backups shows it"}
