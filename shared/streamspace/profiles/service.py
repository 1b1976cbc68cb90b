"""Persistent profiles (HOME_STORAGE=s3): a user's home saved as a tar.gz archive per version under
`<prefix>profiles/<user id>/<version id>.tar.gz`.

The profile agent in the session's pod never holds storage credentials: with its session's agent token
it asks for short-lived presigned URLs of its own user's keys only (one GET of the current version, one
PUT of a new key per save), and asks for a save to be committed. A commit makes the version current
only when the object's size and SHA-256 are what the agent announced and the user's storage quota
allows it; anything else leaves the previous version current.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from streamspace import audit, objectstore
from streamspace.config import environment
from streamspace.db import transaction
from streamspace.domain.errors import (
    Conflict,
    DomainError,
    Invalid,
    NotFound,
    NotImplementedYet,
    Unauthenticated,
    ValidationError,
)
from streamspace.domain.quotas import Usage
from streamspace.profiles import store
from streamspace.profiles.agent_tokens import token_subject
from streamspace.quotas.service import check_and_reserve

log = logging.getLogger("streamspace.profiles")

FOLDER = "profiles"
# Beyond the save grace period after a session ended: the pod's deletion reaches the kubelet a little later.
AGENT_GRACE_MARGIN_SECONDS = 60
STALE_UPLOAD_HOURS = 24  # an announced save not committed by then was interrupted: its row and object go


# -- the agent's credential --------------------------------------------------------------------------

# (namespace, session, user id, grace seconds) -> whether that user's session stands: the sessions store's
# profile_agent_stands, handed in by the storage function (sessions sit beside profiles, not below them).
SessionStands = Callable[[str, str, str, int], bool]


def agent_of(token: str | None, session_stands: SessionStands) -> tuple[str, str, str]:
    """(namespace, session, user id) of a valid agent token whose session still stands; anything else
    is 401 (then 501 where homes are volumes: the credential is checked first, as on every route).

    A session stands while it runs or hibernates, and for the save grace period after it was ended
    (its sidecar saves on the way out); a deleted Session, a deactivated or deleted user, or another
    user's session of that name stand for nothing."""
    subject = token_subject(token)
    if subject is None:
        raise Unauthenticated("a profile agent token is required")
    namespace, session, user_id = subject
    if not store.user_active(user_id):  # a deleted or deactivated user's sessions save nothing more
        raise Unauthenticated("a profile agent token is required")
    grace = environment().profile_agent.save_grace_seconds + AGENT_GRACE_MARGIN_SECONDS
    if not session_stands(namespace, session, user_id, grace):
        raise Unauthenticated("this profile agent's session has ended", error="session ended")
    if environment().home_storage != "s3":
        raise NotImplementedYet("homes are volumes on this server (HOME_STORAGE=volume): no profile agents",
                                error="profiles not enabled")
    return namespace, session, user_id


# -- what the agent does ----------------------------------------------------------------------------

def _url_ttl() -> int:
    return environment().profile_url_ttl_seconds


def current_for_agent(user_id: str) -> dict[str, Any]:
    """The current version's presigned download URL (None: no profile yet)."""
    objectstore.configured()
    row = store.current(user_id)
    if row is None:
        return {"id": None, "downloadUrl": None}
    url = objectstore.presigned("get_object", row["object_key"], _url_ttl())
    return {"id": row["id"], "downloadUrl": url, "sizeBytes": row["size_bytes"], "sha256": row["sha256"]}


def _announced(body: dict[str, Any]) -> tuple[int, str]:
    size, sha256 = body.get("size"), body.get("sha256")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValidationError("size", "expected the archive's size in bytes")
    if not isinstance(sha256, str) or len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValidationError("sha256", "expected the archive's SHA-256 as 64 lowercase hex characters")
    return size, sha256


def start_upload(user_id: str, session: str, body: dict[str, Any]) -> dict[str, Any]:
    """A new version's key and its presigned PUT URL. Refused early when it cannot fit the quota."""
    objectstore.configured()
    size, sha256 = _announced(body)
    _check_quota(user_id, size, None)
    for stale in store.stale_uploads(user_id, STALE_UPLOAD_HOURS):  # announced, never committed
        _discard(stale)
    key = objectstore.key(FOLDER, user_id, f"{uuid.uuid4()}.tar.gz")
    profile_id = store.insert_uploading(user_id, key, size, sha256, session)
    encryption = objectstore.encryption()
    url = objectstore.presigned("put_object", key, _url_ttl(), ContentType="application/gzip", **encryption)
    # Signed headers the PUT must carry as they are (the store refuses it otherwise).
    headers = {"Content-Type": "application/gzip"}
    if "ServerSideEncryption" in encryption:
        headers["x-amz-server-side-encryption"] = encryption["ServerSideEncryption"]
    if "SSEKMSKeyId" in encryption:
        headers["x-amz-server-side-encryption-aws-kms-key-id"] = encryption["SSEKMSKeyId"]
    return {"id": profile_id, "uploadUrl": url, "headers": headers, "expiresIn": _url_ttl()}


def commit(user_id: str, profile_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Make an uploaded version current after checking what arrived; the previous stays current otherwise."""
    size, sha256 = _announced(body)
    row = _own(user_id, profile_id)
    if row["status"] != "uploading":
        raise Conflict(f"profile {profile_id} was already committed", error="already committed")
    if (size, sha256) != (row["size_bytes"], row["sha256"]):
        raise Invalid("the commit does not describe the announced upload", error="upload mismatch")
    try:
        stored_sha, stored_size, _ = objectstore.sha256_of(row["object_key"])
    except NotFound:
        raise Invalid(f"profile {profile_id} was not uploaded (no object): the previous profile stays current",
                      error="upload incomplete") from None
    if (stored_size, stored_sha) != (size, sha256):
        _discard(row)
        raise Invalid(f"profile {profile_id}: the stored object has {stored_size} bytes, sha256 {stored_sha}; "
                      f"announced {size} bytes, sha256 {sha256}: refused, the previous profile stays current",
                      error="checksum mismatch")
    with transaction() as conn:
        # One transaction: the new version current, retention applied, then the quota checked on what
        # remains; a refusal rolls all of it back and the previous version stays current.
        store.make_current(conn, user_id, profile_id)
        # A session's periodic saves are steps towards its last one: the newest replaces them, so the
        # versions kept are how sessions left the home, not a quarter-hour each.
        expired = store.superseded(conn, user_id, row["session"], profile_id)
        for old in expired:
            store.delete(old["id"], conn)
        retired = store.older_than_newest(conn, user_id, environment().profile_keep)
        for old in retired:
            store.delete(old["id"], conn)
        expired += retired
        _check_quota(user_id, store.ready_bytes(conn, user_id), conn)
    _delete_objects([old["object_key"] for old in expired])
    log.info("profile saved", extra={"profile": profile_id, "bytes": size})
    return {"id": profile_id, "current": True, "sizeBytes": size, "sha256": sha256}


def _check_quota(user_id: str, profile_bytes: int, conn: Any) -> None:
    """Profile storage counts against the user's storage quota, with the sessions' volumes."""
    if conn is None:
        with transaction() as own:
            _check_quota(user_id, profile_bytes, own)
        return
    check_and_reserve(conn, user_id, Usage(0, 0, 0, profile_bytes))


def _discard(row: dict[str, Any]) -> None:
    _delete_objects([row["object_key"]])
    store.delete(row["id"])


def _delete_objects(keys: list[str]) -> None:
    if not keys:
        return
    try:
        objectstore.delete_keys(keys)
    except Exception as exc:  # noqa: BLE001 - rows are gone; an orphan object is logged, never shown as a profile
        log.warning("could not delete profile objects", extra={"keys": keys, "reason": str(exc)})


FAILURE_OPERATIONS = ("restore", "save")


def report_failure(user_id: str, session: str, body: dict[str, Any]) -> None:
    """The agent says a restore or save failed: kept for the user's page and the alerting metric."""
    operation, reason = body.get("operation"), body.get("reason")
    if operation not in FAILURE_OPERATIONS:
        raise ValidationError("operation", "expected restore or save")
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError("reason", "expected what went wrong, as text")
    reason = " ".join(reason.split())[:500]
    store.record_failure(user_id, session, operation, reason)
    log.warning(f"profile {operation} failed", extra={"session": session, "reason": reason})


def failures_last_hour() -> dict[str, float]:
    """The metric streamspace_profile_failures_last_hour{operation}."""
    return {operation: float(count) for operation, count in store.failure_counts(1).items()}


# -- a deleted user's profile objects ----------------------------------------------------------------

PURGE_BATCH = 1000  # keys per request to the store (S3's most)


def purge_deleted_users() -> dict[str, int]:
    """Delete from the store the objects of deleted users' profiles (recorded when each user was deleted).
    What the store refuses stays recorded with the reason, for the next run; nothing is raised."""
    if environment().s3 is None:
        return {"purged": 0, "failed": 0}
    purged = failed = 0
    while keys := [row["object_key"] for row in store.pending_purges(PURGE_BATCH)]:
        try:
            objectstore.delete_keys(keys)
        except DomainError as exc:
            store.purge_failed(keys, str(exc))
            failed += len(keys)
            log.error("deleted users' profile objects could not be deleted: retried at the next tick",
                      extra={"objects": len(keys), "reason": str(exc)})
            break
        store.purged(keys)
        purged += len(keys)
    if purged:
        log.info("deleted users' profile objects deleted", extra={"objects": purged})
    return {"purged": purged, "failed": failed}


def purges_pending() -> dict[str, float]:
    """The metric streamspace_profile_purge_objects{state}: waiting (never tried) and failing."""
    return {state: float(count) for state, count in store.purge_counts().items()}


# -- what users and admins do -----------------------------------------------------------------------

def _own(user_id: str | None, profile_id: str) -> dict[str, Any]:
    try:
        uuid.UUID(profile_id)
    except ValueError:
        raise ValidationError("id", "expected a profile id (a UUID)") from None
    row = store.get(profile_id)
    if row is None or (user_id is not None and row["user_id"] != user_id):
        raise NotFound(f"profile {profile_id} not found", error="profile not found")  # another's: 404, never 403
    return row


def describe(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "userId": row["user_id"], "username": row["username"], "current": row["is_current"],
            "sizeBytes": row["size_bytes"], "sha256": row["sha256"], "session": row["session"],
            "createdAt": row["created_at"].isoformat()}


def _scope(caller: Any) -> str | None:
    return None if caller.role == "admin" else caller.user_id


def list_profiles(caller: Any, limit: int) -> dict[str, Any]:
    """A user's versions (an admin's: everyone's, and the deleted users' objects still to be deleted)."""
    listing: dict[str, Any] = {"profiles": [describe(r) for r in store.list_for(_scope(caller), limit)]}
    if caller.role == "admin":
        listing["pendingDeletion"] = [
            {"userId": r["user_id"], "username": r["username"], "objects": int(r["objects"]),
             "sizeBytes": int(r["size_bytes"]), "requestedAt": r["requested_at"].isoformat(),
             "attempts": int(r["attempts"]), "lastError": r["last_error"]}
            for r in store.purges_by_user()]
    return listing


def saved_home(user_id: str) -> dict[str, Any]:
    """What the portal's page shows a user: whether homes are profiles here, their versions (newest first)
    and their recent failed restores and saves."""
    return {"enabled": environment().home_storage == "s3",
            "versions": [describe(r) for r in store.list_for(user_id, 100)],
            "failures": store.recent_failures(user_id, 5)}


def set_current(caller: Any, profile_id: str, client_ip: str) -> dict[str, Any]:
    row = _own(_scope(caller), profile_id)
    if row["status"] != "ready":
        raise Conflict(f"profile {profile_id} is still uploading", error="not ready")
    with transaction() as conn:
        store.make_current(conn, row["user_id"], profile_id)
        audit.record(conn, caller, "profile.current", "profile", profile_id, client_ip, {"user": row["username"]})
    return describe({**row, "is_current": True})


def delete_profile(caller: Any, profile_id: str, client_ip: str) -> None:
    row = _own(_scope(caller), profile_id)
    if row["is_current"]:
        raise Conflict("the current profile cannot be deleted: make another version current first",
                       error="profile is current")
    with transaction() as conn:
        store.delete(profile_id, conn)
        audit.record(conn, caller, "profile.delete", "profile", profile_id, client_ip, {"user": row["username"]})
    _delete_objects([row["object_key"]])
