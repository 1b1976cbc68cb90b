"""The one error model: every failure the library reports says what kind it is and whether trying
again can help, the way kopf's `TemporaryError`/`PermanentError` do.

Services raise these and nothing HTTP-shaped; the edges translate them once:
- the HTTP layer through one registry (`streamspace.http.errors.to_http`): kind -> status;
- CloudEvent handlers (`streamspace.events.event_function`) ask the broker to retry only when the
  error is `retryable`, and refuse the event otherwise, so a 403 or a 422 is never retried forever.

`error` is the short code of the contract's body `{"error": ..., "message": ...}`; `details` adds
fields to that body (a quota refusal carries `quota`).
"""

from __future__ import annotations

import enum
from typing import Any


class ErrorKind(enum.StrEnum):
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    INVALID = "invalid"
    UNPROCESSABLE = "unprocessable"  # well-formed, but not something this installation can do (HTTP 422)
    FORBIDDEN = "forbidden"
    UNAVAILABLE = "unavailable"  # a dependency (database, cluster) cannot answer now
    UNAUTHENTICATED = "unauthenticated"  # no valid credential at all (HTTP 401)
    RATE_LIMITED = "rate_limited"  # too many attempts; `retry_after` seconds
    UPSTREAM = "upstream"  # a service we depend on answered, but not acceptably (refused our credentials)
    NOT_IMPLEMENTED = "not_implemented"  # not built yet, or switched off on this server: never a fake success
    INTERNAL = "internal"  # the platform itself is misconfigured (e.g. RBAC refuses our account)


class DomainError(Exception):
    """A failure with a kind. Subclasses fix the kind and its default code and retryability."""

    kind = ErrorKind.INTERNAL
    default_error = "internal error"
    retryable = False

    def __init__(self, message: str, *, error: str | None = None, retryable: bool | None = None,
                 retry_after: int | None = None, **details: Any) -> None:
        if "headers" in details:
            raise TypeError("domain errors carry no HTTP headers: say retry_after=, or scheme= on Unauthenticated")
        super().__init__(message)
        self.message = message
        self.error = error or self.default_error
        if retryable is not None:
            self.retryable = retryable
        self.retry_after = None if retry_after is None else max(1, int(retry_after))  # seconds, a hint
        self.details = details


class NotFound(DomainError):
    kind = ErrorKind.NOT_FOUND
    default_error = "not found"


class Conflict(DomainError):
    kind = ErrorKind.CONFLICT
    default_error = "conflict"


class Invalid(DomainError, ValueError):
    kind = ErrorKind.INVALID
    default_error = "bad request"


class Unprocessable(DomainError):
    """A well-formed value this installation cannot honour (an ingress class no forward-auth covers):
    the message names the values it accepts."""

    kind = ErrorKind.UNPROCESSABLE
    default_error = "unprocessable"


class Forbidden(DomainError):
    kind = ErrorKind.FORBIDDEN
    default_error = "forbidden"


class Unavailable(DomainError):
    kind = ErrorKind.UNAVAILABLE
    default_error = "service unavailable"
    retryable = True


class Unauthenticated(DomainError):
    kind = ErrorKind.UNAUTHENTICATED
    default_error = "unauthorized"
    scheme: str | None = "Bearer"  # the credential that would be accepted (None: a signature, no challenge)

    def __init__(self, message: str = "a valid access token is required", *, scheme: str | None = "Bearer",
                 **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.scheme = scheme


class RateLimited(DomainError):
    kind = ErrorKind.RATE_LIMITED
    default_error = "too many requests"
    retryable = True

    def __init__(self, message: str, *, retry_after: int, **kwargs: Any) -> None:
        super().__init__(message, retry_after=retry_after, **kwargs)


class UpstreamRefused(DomainError):
    kind = ErrorKind.UPSTREAM
    default_error = "bad gateway"


class NotImplementedYet(DomainError):
    """An endpoint of the contract that is not built yet (or not configured here): 501."""

    kind = ErrorKind.NOT_IMPLEMENTED
    default_error = "not implemented"


class ValidationError(Invalid):
    """Input that cannot be accepted.

    `field` is the dotted path of the offending input (``resources.memory``, ``spec.vnc.port``);
    the HTTP layer answers 400 ``{"error": "invalid <field>", "message": <message>}``.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, error=f"invalid {field}")
        self.args = (f"{field}: {message}",)  # str(exc) names the field, as logs and sync outcomes show it
        self.field = field


def join_field(prefix: str, name: str) -> str:
    """`spec` + `vnc` -> `spec.vnc`; an empty prefix yields the bare name."""
    return f"{prefix}.{name}" if prefix else name
