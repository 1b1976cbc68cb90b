"""Signed push notifications (GitHub, Gitea, GitLab-style JSON) -> sync requests (a service of the
catalog over `catalog.store`).

- No WEBHOOK_SECRET configured: the route answers 503 and never reads a payload.
- The signature is checked first, over the RAW body: `X-Hub-Signature-256: sha256=<hex>` (GitHub,
  Gitea) or `X-Gitea-Signature: <hex>`, HMAC-SHA256 with WEBHOOK_SECRET, compared in constant
  time. Missing or wrong -> 401, nothing parsed.
- The payload names the repository (`repository_url`, or `repository.clone_url` / `html_url` /
  `ssh_url` / `git_url` / `url`) and the branch (`branch`, or `ref` = refs/heads/<b>). Tag pushes
  and other refs are acknowledged and ignored. Without a branch, every branch of that URL syncs.
- Matching is by the normalised URL (scheme, credentials, `.git`, trailing slash and case do not
  matter), so the https and ssh forms of one repository match.
- The answer is 202 with the number of repositories a sync was requested for (0 when none
  matched). Decision: only a holder of the webhook secret can ask, so the count is useful
  diagnostics in the sender's delivery log and reveals nothing to anyone else; names and ids are
  never returned.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from streamspace.catalog import store
from streamspace.catalog.repositories import announce_sync
from streamspace.catalog.urls import normalize_url
from streamspace.config import environment
from streamspace.domain.errors import Invalid, Unauthenticated, Unavailable
from streamspace.encoding import loads

EVENT_SOURCE = "/streamspace/webhooks"
SIGNATURE_HEADERS = ("X-Hub-Signature-256", "X-Gitea-Signature", "X-Gogs-Signature")
_URL_KEYS = ("clone_url", "html_url", "ssh_url", "git_url", "url", "git_http_url", "git_ssh_url", "web_url")


class InvalidSignature(Unauthenticated):
    def __init__(self, message: str) -> None:
        # An HMAC signature over the body: there is no credential to challenge for.
        super().__init__(message, error="invalid signature", scheme=None)


def verify_signature(secret: str, body: bytes, headers: Any) -> None:
    """Raise InvalidSignature unless one of the signature headers carries HMAC-SHA256(secret, body)."""
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    given = None
    for name in SIGNATURE_HEADERS:
        value = headers.get(name)
        if value:
            given = value.strip()
            break
    if given is None:
        raise InvalidSignature("missing X-Hub-Signature-256 header (sha256=<hex HMAC of the body>)")
    if given.lower().startswith("sha256="):
        given = given[7:]
    if not hmac.compare_digest(given.lower().encode(), expected.encode()):
        raise InvalidSignature("the signature does not match the body")


def _payload(body: bytes, content_type: str) -> dict[str, Any]:
    try:
        if content_type.startswith("application/x-www-form-urlencoded"):
            form = parse_qs(body.decode(), max_num_fields=10)
            data: Any = loads(form.get("payload", ["{}"])[0])
        else:
            data = loads(body or b"{}")
    except UnicodeDecodeError:
        raise Invalid("the payload is not JSON", error="invalid body") from None
    if not isinstance(data, dict):
        raise Invalid("the payload must be a JSON object", error="invalid body")
    return data


def _urls(data: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    candidates: list[Any] = [data.get("repository_url")]
    repository = data.get("repository")
    if isinstance(repository, dict):
        candidates += [repository.get(k) for k in _URL_KEYS]
    elif isinstance(repository, str):
        candidates.append(repository)
    project = data.get("project")  # GitLab
    if isinstance(project, dict):
        candidates += [project.get(k) for k in _URL_KEYS]
    for candidate in candidates:
        normalized = normalize_url(candidate)
        if normalized:
            found.add(normalized)
    return found


def _branch(data: dict[str, Any]) -> tuple[str | None, str | None]:
    """(branch or None for any, reason to ignore the push or None)."""
    branch = data.get("branch")
    if isinstance(branch, str) and branch:
        return branch.removeprefix("refs/heads/"), None
    ref = data.get("ref")
    if isinstance(ref, str) and ref:
        if ref.startswith("refs/heads/"):
            return ref[len("refs/heads/"):], None
        if ref.startswith("refs/"):
            return None, f"{ref} is not a branch"
        return ref, None
    return None, None


def handle_push(read_body: Callable[[], bytes], headers: Any, content_type: str) -> tuple[int, dict[str, Any]]:
    """The webhook route: (status, body). The body is not even read unless a secret is configured."""

    secret = environment().webhook_secret
    if not secret:
        raise Unavailable("repository webhooks are disabled: WEBHOOK_SECRET is not configured",
                          error="webhooks disabled")
    body = read_body()
    verify_signature(secret, body, headers)
    data = _payload(body, content_type.lower())
    urls = _urls(data)
    if not urls:
        raise Invalid("the payload names no repository (repository_url or repository.clone_url)",
                      error="invalid repository_url")
    branch, ignored = _branch(data)
    if ignored is not None:
        return 202, {"message": f"ignored: {ignored}", "repositories": 0}
    matching = store.repository_ids_by_url(sorted(urls), branch)
    ids = store.request_sync(matching) if matching else []
    for repository_id in ids:
        announce_sync(repository_id, EVENT_SOURCE)
    if not ids:
        return 202, {"message": "no repository matches this push", "repositories": 0}
    return 202, {"message": "sync requested", "status": "syncing", "repositories": len(ids)}

