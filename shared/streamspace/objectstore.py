"""The S3 object store of backups (and persistent profiles): one client, server-side encryption on every
write, uploads streamed in parts with the SHA-256 of exactly what was sent.

Credentials come from the standard AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or a web identity
token on EKS); only the functions that need the store receive them (docs/s3.md).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from streamspace.config import S3Settings, environment
from streamspace.domain.errors import DomainError, NotFound, NotImplementedYet, Unavailable
from streamspace.records import record

log = logging.getLogger("streamspace.objectstore")

# S3 wants parts of at least 5 MiB (all but the last); 8 MiB bounds what one upload holds in memory.
PART_SIZE = 8 * 1024 * 1024
READ_CHUNK = 1024 * 1024

_lock = threading.Lock()
_clients: dict[S3Settings, Any] = {}


@record
class Written:
    key: str
    size: int
    sha256: str


def configured() -> S3Settings:
    """The store's settings; refused (501) when none is configured on this server."""
    s3 = environment().s3
    if s3 is None:
        raise NotImplementedYet("no object store is configured on this server (S3_BUCKET)",
                                error="object store not configured")
    return s3


def key(*parts: str) -> str:
    """A key under the configured prefix."""
    return configured().prefix + "/".join(parts)


def client() -> Any:
    s3 = configured()
    found = _clients.get(s3)
    if found is None:
        with _lock:
            found = _clients.get(s3)
            if found is None:
                import boto3
                from botocore.config import Config

                # Few, quick retries: an unreachable store must fail the run visibly, the next
                # trigger tries again (a backup that hangs for minutes helps no one).
                config = Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 2, "mode": "standard"},
                                signature_version="s3v4", s3={"addressing_style": "path"} if s3.endpoint_url else {})
                found = _clients[s3] = boto3.session.Session().client(
                    "s3", region_name=s3.region, endpoint_url=s3.endpoint_url, config=config)
    return found


def reset_clients() -> None:
    """Forget the clients (tests point the settings at another store)."""
    with _lock:
        _clients.clear()


def encryption() -> dict[str, str]:
    """The server-side encryption arguments of every write."""
    s3 = configured()
    if s3.sse == "none":
        return {}
    args = {"ServerSideEncryption": s3.sse}
    if s3.kms_key_id:
        args["SSEKMSKeyId"] = s3.kms_key_id
    return args


def _failure(exc: Exception, what: str) -> DomainError:
    """A botocore error as a domain error: a missing key is NotFound, everything else the store being
    unavailable (unreachable, refusing our credentials, throttling)."""
    code = ""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
    if code in ("NoSuchKey", "404", "NotFound"):
        return NotFound(f"{what}: no such object", error="not found")
    detail = f"{code}: {exc}" if code else str(exc)
    return Unavailable(f"object store: {what} failed ({detail})", error="object store unavailable")


def _botocore_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def upload_stream(object_key: str, chunks: Iterable[bytes], *, content_type: str = "application/octet-stream",
                  metadata: dict[str, str] | None = None) -> Written:
    """Stream `chunks` to `object_key` as a multipart upload, never holding more than one part.

    Returns the size and SHA-256 of what was uploaded. On any failure (of the store or of the chunk
    source) the upload is aborted, so no partial object is ever visible under the key.
    """
    s3 = configured()
    store = client()
    errors = _botocore_errors()
    try:
        upload = store.create_multipart_upload(Bucket=s3.bucket, Key=object_key, ContentType=content_type,
                                               Metadata=metadata or {}, **encryption())
    except errors as exc:
        raise _failure(exc, f"starting the upload of {object_key}") from None
    upload_id = upload["UploadId"]
    digest = hashlib.sha256()
    size = 0
    parts: list[dict[str, Any]] = []
    buffer = bytearray()

    def send(data: bytes) -> None:
        answer = store.upload_part(Bucket=s3.bucket, Key=object_key, UploadId=upload_id,
                                   PartNumber=len(parts) + 1, Body=data)
        parts.append({"PartNumber": len(parts) + 1, "ETag": answer["ETag"]})

    try:
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            buffer += chunk
            while len(buffer) >= PART_SIZE:
                send(bytes(buffer[:PART_SIZE]))
                del buffer[:PART_SIZE]
        if buffer or not parts:
            send(bytes(buffer))
        store.complete_multipart_upload(Bucket=s3.bucket, Key=object_key, UploadId=upload_id,
                                        MultipartUpload={"Parts": parts})
    except BaseException as exc:
        try:
            store.abort_multipart_upload(Bucket=s3.bucket, Key=object_key, UploadId=upload_id)
        except errors:
            log.warning("could not abort a failed upload; the bucket's lifecycle rule removes it",
                        extra={"key": object_key})
        if isinstance(exc, errors):
            raise _failure(exc, f"uploading {object_key}") from None
        raise
    return Written(object_key, size, digest.hexdigest())


def presigned(operation: str, object_key: str, ttl_seconds: int, **params: str) -> str:
    """A URL that allows exactly one operation (get_object / put_object) on exactly one key, for
    `ttl_seconds`: what a desktop's profile agent gets instead of credentials."""
    s3 = configured()
    try:
        url: str = client().generate_presigned_url(operation, Params={"Bucket": s3.bucket, "Key": object_key, **params},
                                                   ExpiresIn=ttl_seconds)
    except _botocore_errors() as exc:
        raise _failure(exc, f"signing a URL for {object_key}") from None
    return url


def put_bytes(object_key: str, data: bytes, *, content_type: str = "application/json") -> Written:
    s3 = configured()
    try:
        client().put_object(Bucket=s3.bucket, Key=object_key, Body=data, ContentType=content_type, **encryption())
    except _botocore_errors() as exc:
        raise _failure(exc, f"writing {object_key}") from None
    return Written(object_key, len(data), hashlib.sha256(data).hexdigest())


def head(object_key: str) -> dict[str, Any]:
    s3 = configured()
    try:
        answer: dict[str, Any] = client().head_object(Bucket=s3.bucket, Key=object_key)
    except _botocore_errors() as exc:
        raise _failure(exc, f"reading {object_key}") from None
    return answer


def read_bytes(object_key: str) -> bytes:
    return b"".join(read_stream(object_key))


def read_stream(object_key: str, *, if_match: str | None = None) -> Iterator[bytes]:
    """The object's bytes in chunks; with `if_match` (an ETag) only that exact version of it."""
    s3 = configured()
    errors = _botocore_errors()
    extra = {"IfMatch": if_match} if if_match else {}
    try:
        body = client().get_object(Bucket=s3.bucket, Key=object_key, **extra)["Body"]
    except errors as exc:
        raise _failure(exc, f"reading {object_key}") from None
    try:
        while chunk := body.read(READ_CHUNK):
            yield chunk
    except errors as exc:
        raise _failure(exc, f"reading {object_key}") from None
    finally:
        body.close()


def sha256_of(object_key: str) -> tuple[str, int, str]:
    """(SHA-256, size, ETag) of the object as stored, computed by reading it whole (streamed)."""
    etag = str(head(object_key).get("ETag", ""))
    digest = hashlib.sha256()
    size = 0
    for chunk in read_stream(object_key, if_match=etag or None):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size, etag


def list_keys(prefix: str) -> list[dict[str, Any]]:
    """Every object under `prefix` (Key, Size, LastModified)."""
    s3 = configured()
    found: list[dict[str, Any]] = []
    try:
        for page in client().get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix):
            found.extend(page.get("Contents", []))
    except _botocore_errors() as exc:
        raise _failure(exc, f"listing {prefix}") from None
    return found


def delete_keys(keys: list[str]) -> None:
    """Delete objects (a missing one is no error), at most 1,000 per request as S3 allows."""
    s3 = configured()
    try:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start:start + 1000]]
            answer = client().delete_objects(Bucket=s3.bucket, Delete={"Objects": batch, "Quiet": True})
            failed = answer.get("Errors") or []
            if failed:
                raise Unavailable(f"object store: deleting {failed[0].get('Key')} failed ({failed[0].get('Code')})",
                                  error="object store unavailable")
    except _botocore_errors() as exc:
        raise _failure(exc, "deleting objects") from None
