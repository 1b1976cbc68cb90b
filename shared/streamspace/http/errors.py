"""HTTP errors with the contract's body shape `{"error": ..., "message": ...}`."""

from __future__ import annotations

from typing import Any


class HttpError(Exception):
    status = 500
    default_error = "internal error"

    def __init__(self, message: str, *, error: str | None = None, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.error = error or self.default_error
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "message": self.message, **self.extra}


class BadRequest(HttpError):
    status = 400
    default_error = "bad request"


class Unauthorized(HttpError):
    status = 401
    default_error = "unauthorized"

    def __init__(self, message: str = "a valid access token is required", **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="streamspace"'})
        super().__init__(message, **kwargs)


class Forbidden(HttpError):
    status = 403
    default_error = "forbidden"


class NotFound(HttpError):
    status = 404
    default_error = "not found"


class MethodNotAllowed(HttpError):
    status = 405
    default_error = "method not allowed"


class Conflict(HttpError):
    status = 409
    default_error = "conflict"


class PayloadTooLarge(HttpError):
    status = 413
    default_error = "payload too large"


class UnsupportedMediaType(HttpError):
    status = 415
    default_error = "unsupported media type"


class Unprocessable(HttpError):
    status = 422
    default_error = "unprocessable"


class TooManyRequests(HttpError):
    status = 429
    default_error = "too many requests"

    def __init__(self, message: str, *, retry_after: int, **kwargs: Any) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after))}, **kwargs)


class BadGateway(HttpError):
    """A service we depend on answered, but not acceptably (e.g. refused our credentials)."""

    status = 502
    default_error = "bad gateway"


class ServiceUnavailable(HttpError):
    status = 503
    default_error = "service unavailable"


class NotImplementedYet(HttpError):
    """An endpoint of the contract that is not built yet: 501, never a fake success."""

    status = 501
    default_error = "not implemented"
