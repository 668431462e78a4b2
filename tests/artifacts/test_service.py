"""The artifact store's core on both backends: content in, the same content out, stored
once, verified on every read, and never collected while referenced."""

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from datetime import timedelta

import obstore
import pytest
from sqlalchemy import func, select

from app.artifacts.content import Located, manifest_digest, normalize_path, store_content
from app.artifacts.errors import BlobCorruptError, BlobMissingError, TooLargeError
from app.artifacts.models import CHUNK_SIZE, Blob, RunArtifact
from app.artifacts.runs import delete_artifact, get_artifact, list_artifacts, log_artifact
from app.artifacts.store import S3_COPY_LIMIT, UPLOADS, BlobStore, Uploaded, _blocks, blob_key
from app.artifacts.upkeep import collect_garbage, verify
from app.errors import ValidationError
from app.events.models import Event, EventType
from tests.factories import make_run
from tests.integrity import table_counts

MAX = 1 << 30
NO_GRACE = timedelta(0)


async def pieces(data: bytes, size: int = 1 << 20) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def objects(blobs: BlobStore, prefix: str) -> list[str]:
    return [o.key async for o in blobs.iterate(prefix)]


async def read(blobs: BlobStore, located: Located, start: int = 0, end: int | None = None) -> bytes:
    out = bytearray()
    async for part in blobs.open(
        located.digest, size=located.size, chunks=located.chunks, start=start, end=end
    ):
        out += part
    return bytes(out)


async def log(db, blobs: BlobStore, run_id: str, path: str, data: bytes, **kw) -> Uploaded:
    uploaded = await store_content(db, blobs, pieces(data), max_bytes=MAX, **kw)
    async with db.unit_of_work() as session:
        await log_artifact(
            session, blobs, run_id=run_id, path=path, uploaded=uploaded, actor="t", max_files=100
        )
    return uploaded


async def located(db, run_id: str, path: str) -> Located:
    async with db.read() as session:
        return await get_artifact(session, run_id=run_id, path=path)


# Spans three chunks, the last one short.
DATA = os.urandom(2 * CHUNK_SIZE + 12345)


async def test_round_trip_by_content_and_event(db, blobs):
    run = await make_run(db)
    uploaded = await log(db, blobs, run.id, "model/weights.bin", DATA)
    assert uploaded.digest == hashlib.sha256(DATA).hexdigest()
    found = await located(db, run.id, "model/weights.bin")
    assert (found.digest, found.size) == (uploaded.digest, len(DATA))
    assert await read(blobs, found) == DATA
    async with db.read() as session:
        events = (
            await session.scalars(select(Event).where(Event.type == EventType.ARTIFACTS_LOGGED))
        ).all()
        listed = await list_artifacts(session, run_id=run.id, prefix="model")
    assert [e.payload["files"][0]["digest"] for e in events] == [uploaded.digest]
    assert [a.path for a in listed] == ["model/weights.bin"]
    assert await objects(blobs, UPLOADS) == []


async def test_same_content_twice_is_one_blob(db, blobs):
    run = await make_run(db)
    a = await log(db, blobs, run.id, "a.bin", DATA)
    b = await log(db, blobs, run.id, "copy/b.bin", DATA)
    assert a.digest == b.digest
    assert await objects(blobs, "blobs/") == [blob_key(a.digest)]
    assert await objects(blobs, UPLOADS) == []
    counts = await table_counts(db)
    assert (counts["blob"], counts["run_artifact"]) == (1, 2)


async def test_declared_digest_mismatch_is_refused_and_leaves_nothing(db, blobs):
    run = await make_run(db)
    before = await table_counts(db)
    with pytest.raises(ValidationError) as refused:
        await log(db, blobs, run.id, "a.bin", DATA, declared="0" * 64)
    assert refused.value.field == "sha256"
    assert await table_counts(db) == before
    assert await objects(blobs, "") == []
    # the right declaration is accepted
    await log(db, blobs, run.id, "a.bin", DATA, declared=hashlib.sha256(DATA).hexdigest())


async def test_size_limit_is_refused_and_leaves_nothing(db, blobs):
    with pytest.raises(TooLargeError) as refused:
        await store_content(db, blobs, pieces(DATA), max_bytes=CHUNK_SIZE)
    assert refused.value.limit == CHUNK_SIZE
    assert await objects(blobs, "") == []


async def test_the_store_own_object_limit_bounds_the_setting(db, blobs, store_url):
    """S3 settles an upload with one CopyObject (at most 5 GiB): a larger file is refused
    by name and limit at upload, never accepted and then lost at settling."""
    assert blobs.max_object_bytes == (S3_COPY_LIMIT if store_url.startswith("s3") else None)
    blobs.max_object_bytes = CHUNK_SIZE
    with pytest.raises(TooLargeError) as refused:
        await store_content(db, blobs, pieces(DATA), max_bytes=10 * CHUNK_SIZE)
    assert refused.value.limit == CHUNK_SIZE
    assert await objects(blobs, "") == []


async def corrupt(blobs: BlobStore, digest: str, at: int) -> None:
    result = await obstore.get_async(blobs.store, blob_key(digest))
    data = bytearray(await result.bytes_async())
    data[at] ^= 0xFF
    await obstore.put_async(blobs.store, blob_key(digest), bytes(data))


async def test_corrupt_blob_is_detected_before_wrong_bytes_and_by_verify(db, blobs):
    run = await make_run(db)
    uploaded = await log(db, blobs, run.id, "a.bin", DATA)
    await corrupt(blobs, uploaded.digest, CHUNK_SIZE + 7)  # in the second chunk
    found = await located(db, run.id, "a.bin")
    received = bytearray()

    async def drain() -> None:
        async for part in blobs.open(found.digest, size=found.size, chunks=found.chunks):
            received.extend(part)

    with pytest.raises(BlobCorruptError) as error:
        await drain()
    # the first (good) chunk went out, nothing of the bad one
    assert bytes(received) == DATA[:CHUNK_SIZE]
    assert error.value.offset == CHUNK_SIZE
    # a range inside the good chunk still reads; one touching the bad chunk does not
    assert await read(blobs, found, 10, 20) == DATA[10:20]
    with pytest.raises(BlobCorruptError):
        await read(blobs, found, CHUNK_SIZE - 5, CHUNK_SIZE + 5)
    report = await verify(db, blobs)
    assert (report.checked, report.corrupt, report.missing) == (1, [uploaded.digest], [])
    assert not report.ok


async def test_missing_blob_is_a_typed_error_and_reported(db, blobs):
    run = await make_run(db)
    uploaded = await log(db, blobs, run.id, "a.bin", b"hello")
    await blobs.delete(uploaded.digest)
    found = await located(db, run.id, "a.bin")
    with pytest.raises(BlobMissingError):
        await read(blobs, found)
    report = await verify(db, blobs)
    assert report.missing == [uploaded.digest]


async def test_range_reads_are_the_right_bytes(db, blobs):
    run = await make_run(db)
    await log(db, blobs, run.id, "a.bin", DATA)
    found = await located(db, run.id, "a.bin")
    for start, end in [
        (0, 1),
        (5, CHUNK_SIZE + 3),
        (CHUNK_SIZE, 2 * CHUNK_SIZE),
        (len(DATA) - 3, len(DATA)),
        (3, 3),
    ]:
        assert await read(blobs, found, start, end) == DATA[start:end], (start, end)


async def failing(data: bytes) -> AsyncIterator[bytes]:
    yield data[: CHUNK_SIZE + 10]
    raise ConnectionResetError("client went away")


async def test_interrupted_upload_leaves_nothing_visible_and_gc_clears_it(db, blobs):
    run = await make_run(db)
    before = await table_counts(db)
    with pytest.raises(ConnectionResetError):
        await store_content(db, blobs, failing(DATA), max_bytes=MAX)
    assert await table_counts(db) == before
    assert await objects(blobs, "blobs/") == []
    report = await collect_garbage(db, blobs, grace=NO_GRACE)
    assert await objects(blobs, "") == []
    assert report.blobs_deleted == []
    async with db.read() as session:
        assert await list_artifacts(session, run_id=run.id) == []


async def test_gc_keeps_referenced_and_removes_unreferenced(db, blobs):
    run = await make_run(db)
    kept = await log(db, blobs, run.id, "kept.bin", b"kept")
    gone = await log(db, blobs, run.id, "gone.bin", b"gone")
    async with db.unit_of_work() as session:
        await delete_artifact(session, run_id=run.id, path="gone.bin", actor="t")
    # within the grace period nothing goes
    assert (await collect_garbage(db, blobs, grace=timedelta(hours=1))).blobs_deleted == []
    report = await collect_garbage(db, blobs, grace=NO_GRACE)
    assert report.blobs_deleted == [gone.digest]
    assert await objects(blobs, "blobs/") == [blob_key(kept.digest)]
    assert await blobs.exists(kept.digest)
    assert (await verify(db, blobs)).ok


async def test_gc_racing_an_upload_never_leaves_a_reference_without_its_object(db, blobs):
    # given content that is stored but referenced by nothing (its artifact deleted)
    run = await make_run(db)
    old = await log(db, blobs, run.id, "old.bin", DATA)
    async with db.unit_of_work() as session:
        await delete_artifact(session, run_id=run.id, path="old.bin", actor="t")
    # when the same content is uploaded again and gc runs between its claim and its move
    claimed, resume = asyncio.Event(), asyncio.Event()

    async def pause() -> None:
        claimed.set()
        await resume.wait()

    async def upload() -> None:
        await log(db, blobs, run.id, "new.bin", DATA, after_claim=pause)

    task = asyncio.create_task(upload())
    await claimed.wait()
    # (the upload's temporary object is protected by its age, as it is in production)
    report = await collect_garbage(db, blobs, grace=NO_GRACE, upload_grace=timedelta(hours=1))
    assert report.blobs_deleted == [old.digest]  # the forced interleaving happened
    resume.set()
    await task
    # then the reference exists and so does its object, verified
    found = await located(db, run.id, "new.bin")
    assert await read(blobs, found) == DATA
    assert (await verify(db, blobs)).ok
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Blob)) == 1
        assert await session.scalar(select(func.count()).select_from(RunArtifact)) == 1


async def test_files_per_run_limit(db, blobs):
    run = await make_run(db)
    uploaded = await store_content(db, blobs, pieces(b"x"), max_bytes=MAX)
    async with db.unit_of_work() as session:
        await log_artifact(
            session, blobs, run_id=run.id, path="a", uploaded=uploaded, actor="t", max_files=1
        )
    with pytest.raises(ValidationError) as refused:
        async with db.unit_of_work() as session:
            await log_artifact(
                session, blobs, run_id=run.id, path="b", uploaded=uploaded, actor="t", max_files=1
            )
    assert refused.value.limit == 1


@pytest.mark.parametrize(
    "path",
    [
        "../x",
        "a/../b",
        "/etc/passwd",
        "a//b",
        "a/",
        "./a",
        "",
        "a\\b",
        "a\x00b",
        "a\nb",
        "a\u200bb",
        " a",
    ],
)
def test_bad_paths_are_refused(path):
    with pytest.raises(ValidationError) as refused:
        normalize_path("path", path)
    assert refused.value.field == "path"


def test_manifest_digest_ignores_order_and_sees_every_field():
    a = [("a", "1" * 64, 1), ("b/c", "2" * 64, 2)]
    assert manifest_digest(a) == manifest_digest(reversed(a))
    assert manifest_digest(a) != manifest_digest([("a", "1" * 64, 2), a[1]])
    expected = hashlib.sha256(f"a\t{'1' * 64}\t1\nb/c\t{'2' * 64}\t2\n".encode()).hexdigest()
    assert manifest_digest(a) == expected


@pytest.mark.parametrize(
    "sizes",
    [
        [CHUNK_SIZE, CHUNK_SIZE, 5],  # a local store's pieces: whole chunks
        [1 << 20, 5 * (1 << 20) + 3, 7, 3 * (1 << 20)],  # pieces across chunk edges
        [2 * CHUNK_SIZE + 1, 1 << 19],  # more than one chunk in a piece
    ],
)
async def test_a_download_is_cut_into_chunks_whatever_the_pieces(sizes):
    data = os.urandom(sum(sizes))

    async def arriving() -> AsyncIterator[bytes]:
        at = 0
        for size in sizes:
            yield data[at : at + size]
            at += size

    blocks = [bytes(block) async for block in _blocks(arriving())]

    assert b"".join(blocks) == data
    assert [len(b) for b in blocks[:-1]] == [CHUNK_SIZE] * (len(blocks) - 1)
    assert 0 < len(blocks[-1]) <= CHUNK_SIZE
