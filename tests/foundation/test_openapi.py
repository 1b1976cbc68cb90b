"""The OpenAPI document: generated from the route tables, valid, current, and served."""

from __future__ import annotations

import json

import requests
from openapi_spec_validator import validate

from streamspace.functions import http_apis
from streamspace.http.openapi import build_document, published_document

REGENERATE = "python -m streamspace openapi --write"


def test_published_document_matches_the_routes(db_url: str) -> None:
    generated = build_document(http_apis())
    published = json.loads(published_document())
    assert published == generated, f"routes changed: run `{REGENERATE}` and commit shared/streamspace/openapi.json"


def test_document_is_valid_openapi_and_covers_every_route(db_url: str) -> None:
    document = json.loads(published_document())
    validate(document)
    for api in http_apis():
        for route in api.routes:
            operation = document["paths"][route.path][route.method.lower()]
            assert operation["x-access"] == route.access.value
            assert ("security" in operation and operation["security"] == []) == (not route.access.needs_token)


def test_document_is_served_by_the_api(serve) -> None:
    base = serve("metrics")
    response = requests.get(base + "/api/v1/openapi.json", timeout=10)
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.")
