"""Fuzzing every route of the OpenAPI document (schemathesis) through the real gateway, as an admin
and anonymously: whatever it sends, the API never answers with a server error, nor with a 503
while everything it depends on is up."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from streamspace.http.openapi import published_document


@pytest.fixture(scope="module")
def gateway(db_url: str, sim) -> Iterator[str]:
    from streamspace.local.gateway import Gateway
    from streamspace.local.server import BackgroundServer
    from tests.conftest import environment

    # The live-update streams stay open for LIVE_STREAM_SECONDS and the fuzzer reads each to its end.
    with environment(LIVE_STREAM_SECONDS="1s"):
        server = BackgroundServer(Gateway.for_http_functions()).start()
        yield server.url
        server.stop()


@pytest.fixture(scope="module")
def admin_headers(db_url: str) -> dict[str, str]:
    from tests.conftest import make_user, token_for

    user_id = make_user("fuzzadmin", role="admin")
    return {"Authorization": f"Bearer {token_for(user_id, 'fuzzadmin', 'admin')}"}


# A 503 passes only when it is true: the one feature this test environment leaves switched off, on
# its own route (repository webhooks: WEBHOOK_SECRET is unset), or a dependency (database, cluster)
# that really does not answer right now, probed right after.
DISABLED_HERE = {("POST", "/webhooks/repository/sync"): "webhooks disabled"}


def _dependencies_answer() -> bool:
    from streamspace import kube
    from streamspace.db import DatabaseUnavailable, fetch_one

    try:
        fetch_one("SELECT 1 AS ok")
        kube.list_objects("Namespace")
    except (DatabaseUnavailable, kube.KubeError):
        return False
    return True


DOCUMENT = json.loads(published_document())
OPERATIONS = sorted((method.upper(), path) for path, item in DOCUMENT["paths"].items() for method in item)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_route_answers_a_server_error(method: str, path: str, gateway: str, admin_headers: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_dict(DOCUMENT)
    operation = schema[path][method].ok() if hasattr(schema[path][method], "ok") else schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=6, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    def fuzz(case) -> None:
        for headers in (admin_headers, {}):
            response = case.call(base_url=gateway, headers=headers, timeout=30)
            said = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
            if response.status_code == 503:
                disabled = DISABLED_HERE.get((method, path))
                assert (disabled is not None and response.json().get("error") == disabled) \
                    or not _dependencies_answer(), said
                continue
            assert response.status_code < 500 or response.status_code == 501, said

    fuzz()
