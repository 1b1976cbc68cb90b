"""The OpenAPI document of the whole API, generated from the functions' route tables.

`python -m streamspace openapi --write` regenerates `streamspace/openapi.json`; a test fails when
the committed document and the routes disagree, so clients and fuzzers always see the real API.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamspace.http.api import Api

_ERROR = {"$ref": "#/components/schemas/Error"}
_STATUS_TEXT = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 501: "Not Implemented"}


def build_document(apis: list[Api]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    seen: set[tuple[str, str]] = set()
    for api in sorted(apis, key=lambda a: a.function):
        for route in api.routes:
            key = (route.method, route.path)
            if key in seen:  # the built-in routes repeat in every function
                continue
            seen.add(key)
            operation: dict[str, Any] = {
                "operationId": f"{api.function}_{route.method.lower()}_{route.path.strip('/').replace('/', '_')}"
                .replace("{", "").replace("}", "").replace(".", "_").replace("-", "_"),
                "summary": route.summary or f"{route.method} {route.path}",
                "tags": [api.function],
                "x-access": route.access.value,
                "parameters": [
                    {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in route.params
                ] + [{"name": q, "in": "query", "required": False, "schema": {"type": "string"}} for q in route.query],
                "responses": _responses(route.status, route.access.needs_token),
            }
            if route.access.needs_token:
                operation["security"] = [{"bearerAuth": []}]
            else:
                operation["security"] = []
            if route.body_schema is not None:
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": route.body_schema}},
                }
            paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "StreamSpace API", "version": "v1",
                 "description": "StreamSpace REST API (v1). Every route requires a bearer token unless "
                                "its x-access is public or signed."},
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
                }
            },
        },
    }


def _responses(status: int, needs_token: bool) -> dict[str, Any]:
    responses: dict[str, Any] = {
        str(status): {"description": _STATUS_TEXT.get(status, "OK"), "content": {"application/json": {}}},
        "400": {"description": "Bad input", "content": {"application/json": {"schema": _ERROR}}},
        "404": {"description": "Unknown route or object", "content": {"application/json": {"schema": _ERROR}}},
        "405": {"description": "Wrong method", "content": {"application/json": {"schema": _ERROR}}},
        "413": {"description": "Body too large", "content": {"application/json": {"schema": _ERROR}}},
        "415": {"description": "Body is not JSON", "content": {"application/json": {"schema": _ERROR}}},
        "503": {"description": "Dependency down", "content": {"application/json": {}}},
    }
    if needs_token:
        responses["401"] = {"description": "Missing or invalid token",
                            "content": {"application/json": {"schema": _ERROR}}}
        responses["403"] = {"description": "Not allowed", "content": {"application/json": {"schema": _ERROR}}}
    return responses


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


@lru_cache(maxsize=1)
def published_document() -> str:
    return resources.files("streamspace").joinpath("openapi.json").read_text(encoding="utf-8")
