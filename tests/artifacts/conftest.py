"""The artifact store on both backends: a local folder, and a bucket on moto's
S3-compatible server on 127.0.0.1 (started once per session)."""

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.artifacts.store import BlobStore

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    # Imported here: a run without the S3 variants (the fast tier) does not pay for moto.
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in [*S3_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(S3_ENV, AWS_ENDPOINT_URL=endpoint)
    try:
        yield endpoint
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


@pytest.fixture
def s3_url(s3_endpoint: str) -> str:
    """A fresh bucket for one test, as a store URL with a prefix."""
    import boto3

    bucket = f"b{uuid.uuid4().hex[:16]}"
    boto3.client("s3", endpoint_url=s3_endpoint, **_boto_credentials()).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/artifacts"


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": S3_ENV["AWS_REGION"],
    }


# The S3 variant talks HTTP to moto's S3 server on 127.0.0.1: end-to-end, not in the fast tier.
@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.e2e)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return (tmp_path / "artifacts").as_uri()
    url: str = request.getfixturevalue("s3_url")
    return url


@pytest.fixture
def blobs(store_url: str) -> BlobStore:
    return BlobStore.from_url(store_url)
