"""Kubernetes `Status` failures, shaped exactly as the API server sends them."""

from __future__ import annotations

from typing import Any

_CODE_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
                 409: "Conflict", 410: "Gone", 415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests",
                 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}


def reason_for(code: int) -> str:
    return _CODE_REASONS.get(code, "InternalError" if code >= 500 else "BadRequest")


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.list_meta: dict[str, Any] = {}  # Status.metadata (a 410's fresh continue token)

    def status(self) -> dict[str, Any]:
        body = status_body(self.code, self.reason, self.message, self.details)
        body["metadata"] = dict(self.list_meta)
        return body


def status_body(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": message, "reason": reason}
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def _details(name: str, group: str, plural: str, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name}
    if group:
        d["group"] = group
    d["kind"] = plural
    d.update(extra)
    return d


def not_found(qualified: str, name: str, group: str, plural: str) -> ApiError:
    return ApiError(404, "NotFound", f'{qualified} "{name}" not found', _details(name, group, plural))


def already_exists(qualified: str, name: str, group: str, plural: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{qualified} "{name}" already exists', _details(name, group, plural))


def conflict(qualified: str, name: str, group: str, plural: str, why: str) -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {qualified} "{name}": {why}',
                    _details(name, group, plural))


def invalid(kind: str, name: str, group: str, errors: list[str]) -> ApiError:
    causes = []
    for err in errors:
        field, _, msg = err.partition(": ")
        reason = "FieldValueInvalid"
        if msg.startswith("Required value"):
            reason = "FieldValueRequired"
        elif msg.startswith("Unsupported value"):
            reason = "FieldValueNotSupported"
        elif msg.startswith("Duplicate value"):
            reason = "FieldValueDuplicate"
        elif msg.startswith("Forbidden"):
            reason = "FieldValueForbidden"
        causes.append({"reason": reason, "message": msg, "field": field})
    joined = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
    details = _details(name, group, kind, causes=causes)
    return ApiError(422, "Invalid", f'{kind}.{group} "{name}" is invalid: {joined}' if group else
                    f'{kind} "{name}" is invalid: {joined}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)
