"""The HTTP layer shared by every HTTP function."""

from streamspace.http.api import Access, Api, Reply, Request
from streamspace.http.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    HttpError,
    NotFound,
    NotImplementedYet,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    exception_handler,
)

__all__ = [
    "Access", "Api", "BadRequest", "Conflict", "Forbidden", "HttpError", "NotFound", "NotImplementedYet",
    "PayloadTooLarge", "Reply", "Request", "ServiceUnavailable", "TooManyRequests", "Unauthorized",
    "exception_handler",
]
