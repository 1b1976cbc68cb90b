"""The object store of the storage tests: moto in server mode, a real S3 HTTP endpoint on loopback that
the library reaches through boto3 exactly as it reaches AWS or MinIO (no client-side mocking)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from streamspace.local.server import unused_port
from tests.conftest import environment


@dataclass
class S3Store:
    endpoint: str
    bucket: str
    client: Any  # a boto3 client of the test's own, to look at (or tamper with) what was stored


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    """A moto S3 server for this module: its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def s3_store(s3_server: str) -> Iterator[S3Store]:
    """A fresh bucket on the moto server, made this process's object store (S3_* settings, the AWS chain's
    environment credentials); the settings are restored after the module."""
    import boto3

    from streamspace import objectstore

    bucket = f"streamspace-{uuid.uuid4().hex[:12]}"
    with environment(S3_BUCKET=bucket, S3_ENDPOINT_URL=s3_server, S3_REGION="us-east-1", S3_PREFIX="tests",
                     AWS_ACCESS_KEY_ID="moto-test-key", AWS_SECRET_ACCESS_KEY="moto-test-secret"):  # noqa: S106
        client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
        client.create_bucket(Bucket=bucket)
        objectstore.reset_clients()
        yield S3Store(s3_server, bucket, client)
        objectstore.reset_clients()


def closed_port_url() -> str:
    """An http URL on loopback where nothing listens (a store that is down)."""
    return f"http://127.0.0.1:{unused_port()}"
