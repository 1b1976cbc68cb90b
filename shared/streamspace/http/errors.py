"""HTTP answers for errors, with the contract's body shape `{"error": ..., "message": ...}`.

One registry maps every exception the library raises to its HTTP answer, as Powertools'
`exception_handler` does: a handler is registered for an exception class and found through the
raised exception's MRO, so the most specific handler wins. Domain errors
(`streamspace.domain.errors`) are mapped by their kind; Kubernetes and database failures by their
own handlers below. Services never raise HTTP errors; `HttpError` is for what only the HTTP layer
knows (no route, wrong method, a body too large).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from streamspace.db import DatabaseUnavailable
from streamspace.domain.errors import (
    Conflict,
    DomainError,
    ErrorKind,
    Forbidden,
    Invalid,
    NotFound,
    NotImplementedYet,
    RateLimited,
    Unauthenticated,
    Unavailable,
    UpstreamRefused,
)

if TYPE_CHECKING:
    from streamspace.kube import KubeError

log = logging.getLogger("streamspace.http")

# The names route code has always used for the domain's errors: the same classes, not copies.
BadRequest = Invalid
Unauthorized = Unauthenticated
ServiceUnavailable = Unavailable
TooManyRequests = RateLimited
BadGateway = UpstreamRefused

__all__ = [
    "BadGateway", "BadRequest", "Conflict", "Forbidden", "HttpError", "MethodNotAllowed", "NotFound",
    "NotImplementedYet", "PayloadTooLarge", "ServiceUnavailable", "TooManyRequests", "Unauthorized",
    "UnsupportedMediaType", "exception_handler", "to_http",
]


class HttpError(Exception):
    """An HTTP answer: a status, the contract's body and extra headers."""

    status = 500
    default_error = "internal error"

    def __init__(self, message: str, *, error: str | None = None, headers: dict[str, str] | None = None,
                 status: int | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.error = error or self.default_error
        self.headers = headers or {}
        self.extra = extra
        if status is not None:
            self.status = status

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "message": self.message, **self.extra}


class MethodNotAllowed(HttpError):
    status = 405
    default_error = "method not allowed"


class PayloadTooLarge(HttpError):
    status = 413
    default_error = "payload too large"


class UnsupportedMediaType(HttpError):
    status = 415
    default_error = "unsupported media type"


# -- the registry ---------------------------------------------------------------------------------

E = TypeVar("E", bound=BaseException)
_handlers: dict[type[BaseException] | str, Callable[[Any], HttpError]] = {}


def exception_handler(exc_type: type[E] | str) -> Callable[[Callable[[E], HttpError]], Callable[[E], HttpError]]:
    """Register the HTTP answer for `exc_type` and its subclasses (a subclass's own handler wins).
    `exc_type` may be the class's full name instead ("streamspace.kube.KubeError"): then the HTTP
    layer does not import that class's module, which a function whose routes never raise it would
    otherwise load at start for nothing (the Kubernetes client, in functions that never call it)."""

    def register(handler: Callable[[E], HttpError]) -> Callable[[E], HttpError]:
        _handlers[exc_type] = handler
        return handler

    return register


def to_http(exc: BaseException) -> HttpError | None:
    """The HTTP answer for `exc`, or None when no handler knows it (an unexpected error: 500)."""
    for cls in type(exc).__mro__:
        handler = _handlers.get(cls) or _handlers.get(f"{cls.__module__}.{cls.__qualname__}")
        if handler is not None:
            return handler(exc)
    return None


_STATUS = {
    ErrorKind.NOT_FOUND: 404, ErrorKind.CONFLICT: 409, ErrorKind.INVALID: 400, ErrorKind.UNPROCESSABLE: 422,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.UNAVAILABLE: 503, ErrorKind.UNAUTHENTICATED: 401, ErrorKind.RATE_LIMITED: 429,
    ErrorKind.UPSTREAM: 502, ErrorKind.NOT_IMPLEMENTED: 501, ErrorKind.INTERNAL: 500,
}


@exception_handler(HttpError)
def _http_error(exc: HttpError) -> HttpError:
    return exc


@exception_handler(DomainError)
def _domain_error(exc: DomainError) -> HttpError:
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthenticated) and exc.scheme:
        headers["WWW-Authenticate"] = f'{exc.scheme} realm="streamspace"'
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    return HttpError(exc.message, error=exc.error, headers=headers, status=_STATUS[exc.kind], **exc.details)


DATABASE_RETRY_AFTER_SECONDS = 5


@exception_handler(DatabaseUnavailable)
def _database_unavailable(_: DatabaseUnavailable) -> HttpError:
    # The driver's message names hosts and users: it goes to the log, never to the client.
    return HttpError("the database is unreachable; try again shortly", error="database unavailable", status=503,
                     headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})


@exception_handler("streamspace.kube.KubeError")
def _kube_error(exc: KubeError) -> HttpError:
    """Kubernetes answers as API answers: 404 -> 404, 409 -> 409, 400/422 -> 400 with the server's
    message; unreachable, throttled or 5xx -> 503. Anything else (401/403: the function's RBAC) is
    the platform's own fault and is reported as exactly that, a 500 naming the status, never as
    "cluster unavailable", which would send clients and operators looking in the wrong place."""
    if exc.status == 404:
        return HttpError(exc.message or "not found", error="not found", status=404)
    if exc.status == 409:
        return HttpError(exc.message or "conflict", error="conflict", status=409)
    if exc.status in (400, 422):
        return HttpError(exc.message or "rejected by the Kubernetes API", error="invalid object", status=400)
    if exc.retryable:  # (ClusterUnavailable is a 503)
        return HttpError(exc.describe(), error="cluster unavailable", status=503)
    log.error("the Kubernetes API refused a request", extra={"status": exc.status, "reason": exc.reason,
                                                             "detail": exc.message})
    return HttpError(exc.describe(), error="cluster refused", status=500)
