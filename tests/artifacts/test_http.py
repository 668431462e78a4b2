"""The artifact routes in process: streamed upload, verified and ranged download, ETags,
roles, refused paths; errors are JSON with a status a client can act on."""

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.artifacts.models import CHUNK_SIZE
from app.auth.roles import Role
from app.config import Settings
from app.main import create_app
from tests.conftest import asgi_client, make_token
from tests.factories import make_run
from tests.integrity import table_counts

DATA = os.urandom(CHUNK_SIZE + 1000)
DIGEST = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
async def artifacts_app(database_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    settings = Settings(database_url=database_url, artifact_store=(tmp_path / "store").as_uri())
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def writer(artifacts_app, database_url):
    async with asgi_client(artifacts_app, await make_token(database_url, "w", Role.WRITER)) as c:
        yield c


@pytest.fixture
async def reader(artifacts_app, database_url):
    async with asgi_client(artifacts_app, await make_token(database_url, "r", Role.READER)) as c:
        yield c


async def test_upload_then_download_by_content(writer, reader, db):
    run = await make_run(db)
    url = f"/artifacts/runs/{run.id}/model/weights.bin"
    put = await writer.put(url, content=DATA, headers={"X-Content-SHA256": DIGEST})
    assert put.status_code == 201, put.text
    assert put.json() == {"path": "model/weights.bin", "digest": DIGEST, "size": len(DATA)}
    got = await reader.get(url)
    assert got.status_code == 200
    assert got.content == DATA
    assert got.headers["etag"] == f'"{DIGEST}"'
    assert got.headers["content-length"] == str(len(DATA))
    by_digest = await reader.get(f"/artifacts/blobs/{DIGEST}")
    assert by_digest.content == DATA


async def test_ranges_etag_and_304(writer, reader, db):
    run = await make_run(db)
    url = f"/artifacts/runs/{run.id}/a.bin"
    assert (await writer.put(url, content=DATA)).status_code == 201
    part = await reader.get(url, headers={"Range": f"bytes={CHUNK_SIZE - 2}-{CHUNK_SIZE + 2}"})
    assert part.status_code == 206
    assert part.content == DATA[CHUNK_SIZE - 2 : CHUNK_SIZE + 3]
    assert part.headers["content-range"] == f"bytes {CHUNK_SIZE - 2}-{CHUNK_SIZE + 2}/{len(DATA)}"
    suffix = await reader.get(url, headers={"Range": "bytes=-10"})
    assert (suffix.status_code, suffix.content) == (206, DATA[-10:])
    beyond = await reader.get(url, headers={"Range": f"bytes={len(DATA)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(DATA)}"
    cached = await reader.get(url, headers={"If-None-Match": f'"{DIGEST}"'})
    assert (cached.status_code, cached.content) == (304, b"")


async def test_declared_digest_mismatch_is_a_400_and_changes_nothing(writer, db):
    run = await make_run(db)
    before = await table_counts(db)
    response = await writer.put(
        f"/artifacts/runs/{run.id}/a.bin", content=DATA, headers={"X-Content-SHA256": "0" * 64}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_INPUT"
    assert response.json()["error"]["field"] == "X-Content-SHA256"
    assert await table_counts(db) == before


async def test_too_large_is_a_413(database_url, tmp_path, db):
    run = await make_run(db)
    settings = Settings(
        database_url=database_url,
        artifact_store=(tmp_path / "s").as_uri(),
        max_artifact_bytes=1000,
    )
    application = create_app(settings)
    secret = await make_token(database_url, "w2", Role.WRITER)
    async with (
        application.router.lifespan_context(application),
        asgi_client(application, secret) as c,
    ):
        response = await c.put(f"/artifacts/runs/{run.id}/a.bin", content=DATA)
    assert response.status_code == 413
    assert response.json()["error"]["limit"] == 1000


async def test_roles_and_authentication(artifacts_app, reader, writer, db):
    run = await make_run(db)
    url = f"/artifacts/runs/{run.id}/a.bin"
    denied = await reader.put(url, content=b"x")
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "PERMISSION_DENIED"
    assert (await reader.delete(url)).status_code == 403
    async with asgi_client(artifacts_app) as anonymous:
        assert (await anonymous.get(url)).status_code == 401
    assert (await writer.put(url, content=b"x")).status_code == 201
    assert (await reader.get(url)).content == b"x"
    assert (await writer.delete(url)).status_code == 200
    assert (await reader.get(url)).status_code == 404


@pytest.mark.parametrize(
    "path", ["a/%2e%2e/b", "%2Fetc/passwd", "a//b", "a/", "a%00b", "a%0Ab", "a%E2%80%8Bb", "a%5Cb"]
)
async def test_bad_paths_are_400(writer, db, path):
    run = await make_run(db)
    before = await table_counts(db)
    response = await writer.put(f"/artifacts/runs/{run.id}/{path}", content=b"x")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == "path"
    assert await table_counts(db) == before


async def test_unknown_run_and_blob_are_404(writer, reader):
    assert (await writer.put("/artifacts/runs/nope/a", content=b"x")).status_code == 404
    assert (await reader.get(f"/artifacts/blobs/{'a' * 64}")).status_code == 404
    assert (await reader.get("/artifacts/blobs/xyz")).status_code == 400


async def test_corrupt_blob_is_an_error_never_wrong_bytes(artifacts_app, writer, reader, db):
    run = await make_run(db)
    url = f"/artifacts/runs/{run.id}/a.bin"
    await writer.put(url, content=DATA)
    blobs = artifacts_app.state.blobs
    await blobs.delete(DIGEST)
    response = await reader.get(url)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "BLOB_MISSING"
