"""BlobStore: content-addressed bytes in a local folder or an S3 bucket, through obstore.

Layout: `blobs/<sha256[:2]>/<sha256>` holds content, `uploads/<uuid>` bytes still being
uploaded. Every write streams (constant memory) and hashes as it goes; every read checks
each chunk against the digests recorded at upload before handing it on.
"""

import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import obstore
from obstore.exceptions import NotFoundError as ObjectNotFound
from obstore.store import LocalStore, S3Store

from app.artifacts.errors import BlobCorruptError, BlobMissingError, TooLargeError
from app.artifacts.models import CHUNK_SIZE
from app.errors import ConflictError, UnavailableError

BLOBS = "blobs/"
UPLOADS = "uploads/"
# A download goes out in pieces of this size (views of a verified chunk, not copies).
SEND_SIZE = 1024 * 1024
# Parts of a multipart upload to S3: each is held in memory until sent.
PART_SIZE = 8 * 1024 * 1024
# Parts written concurrently, each held in memory until written: an upload's memory is
# bounded by PART_SIZE * PARTS_IN_FLIGHT whatever the file's size (obstore's default of
# 12 held ~100 MiB per upload when the body arrived faster than the store took it).
PARTS_IN_FLIGHT = 2


@dataclass(frozen=True)
class Uploaded:
    """Bytes written to a temporary object, and what they hash to."""

    temp: str
    digest: str
    size: int
    chunks: bytes


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    last_modified: datetime


def blob_key(digest: str) -> str:
    return f"{BLOBS}{digest[:2]}/{digest}"


def default_root(database_url: str) -> Path:
    """`<db stem>-artifacts` beside a SQLite file; `./artifacts` otherwise."""
    if database_url.startswith("sqlite"):
        path = database_url.split(":///", 1)[-1].split("?", 1)[0]
        if path and path != ":memory:":
            db_file = Path(path)
            return db_file.with_name(f"{db_file.stem}-artifacts")
    return Path("artifacts")


def chunk_digests(data: bytes, chunk_size: int = CHUNK_SIZE) -> bytes:
    """The concatenated SHA-256 of each chunk of `data` (as recorded at upload)."""
    return b"".join(
        hashlib.sha256(data[i : i + chunk_size]).digest() for i in range(0, len(data), chunk_size)
    )


# S3 moves an object with CopyObject, which takes at most 5 GiB in one request; the upload
# itself is multipart and has no such bound, but settling it under its digest would fail.
S3_COPY_LIMIT = 5 * 1024**3


class BlobStore:
    def __init__(
        self,
        store: Any = None,
        *,
        url: str,
        opener: Callable[[], Any] | None = None,
        max_object_bytes: int | None = None,
    ) -> None:
        self._store = store
        self._opener = opener
        self.url = url
        # The largest object this store can settle, whatever the size setting says.
        self.max_object_bytes = max_object_bytes

    @property
    def store(self) -> Any:
        # A local folder is made on first use, not at start-up: a server whose database
        # directory is missing must still start (and say so through /readyz), without
        # creating that directory as a side effect.
        if self._store is None:
            assert self._opener is not None, "a BlobStore needs a store or an opener"
            self._store = self._opener()
        return self._store

    @classmethod
    def from_url(cls, url: str) -> "BlobStore":
        """`file:///path` (created if missing) or `s3://bucket/prefix`, whose credentials,
        region and endpoint come from the standard AWS_* environment variables."""
        parsed = urlparse(url)
        if parsed.scheme == "file":
            root = Path(unquote(parsed.path))

            def local() -> LocalStore:
                root.mkdir(parents=True, exist_ok=True)
                return LocalStore(root)

            return cls(url=url, opener=local)
        if parsed.scheme == "s3":
            return cls(S3Store.from_url(url), url=url, max_object_bytes=S3_COPY_LIMIT)
        raise ValueError(f"artifact store URL must be file:// or s3://, not {url!r}")

    @classmethod
    def from_setting(cls, setting: str | None, database_url: str) -> "BlobStore":
        if setting:
            return cls.from_url(setting if "://" in setting else Path(setting).resolve().as_uri())
        return cls.from_url(default_root(database_url).resolve().as_uri())

    async def put_stream(
        self, data: AsyncIterable[bytes], *, max_bytes: int, field: str = "body"
    ) -> Uploaded:
        """Stream `data` to a new temporary object, hashing it whole and per chunk. A
        failure (the source raising, the size limit, the store) removes what was written."""
        if self.max_object_bytes is not None and self.max_object_bytes < max_bytes:
            max_bytes = self.max_object_bytes
        temp = f"{UPLOADS}{uuid.uuid4().hex}"
        whole = hashlib.sha256()
        chunks: list[bytes] = []
        chunk = hashlib.sha256()
        in_chunk = 0
        size = 0

        async def hashed() -> AsyncIterator[bytes]:
            nonlocal chunk, in_chunk, size
            async for piece in data:
                size += len(piece)
                if size > max_bytes:
                    raise TooLargeError(field, max_bytes)
                whole.update(piece)
                view = memoryview(piece)
                while view:
                    take = min(len(view), CHUNK_SIZE - in_chunk)
                    chunk.update(view[:take])
                    in_chunk += take
                    view = view[take:]
                    if in_chunk == CHUNK_SIZE:
                        chunks.append(chunk.digest())
                        chunk, in_chunk = hashlib.sha256(), 0
                yield piece

        try:
            await obstore.put_async(
                self.store,
                temp,
                hashed(),
                chunk_size=PART_SIZE,
                max_concurrency=PARTS_IN_FLIGHT,
            )
        except BaseException:
            await self.discard(temp)
            raise
        if in_chunk:
            chunks.append(chunk.digest())
        return Uploaded(temp=temp, digest=whole.hexdigest(), size=size, chunks=b"".join(chunks))

    async def settle(self, uploaded: Uploaded) -> None:
        """Move an upload's temporary object to its blob key, unless the content is there
        already (then the copy is dropped: each content is stored once)."""
        key = blob_key(uploaded.digest)
        if await self._size(key) == uploaded.size:
            await self.discard(uploaded.temp)
            return
        try:
            await obstore.rename_async(self.store, uploaded.temp, key)
        except (ObjectNotFound, FileNotFoundError) as exc:
            raise ConflictError(
                "body", "the upload was collected before it was stored; upload it again"
            ) from exc

    async def discard(self, key: str) -> None:
        with contextlib.suppress(ObjectNotFound, FileNotFoundError):
            await obstore.delete_async(self.store, key)

    async def _size(self, key: str) -> int | None:
        try:
            meta = await obstore.head_async(self.store, key)
        except (ObjectNotFound, FileNotFoundError):
            return None
        return int(meta["size"])

    async def exists(self, digest: str) -> bool:
        return await self._size(blob_key(digest)) is not None

    async def delete(self, digest: str) -> None:
        await self.discard(blob_key(digest))

    async def open(
        self, digest: str, *, size: int, chunks: bytes, start: int = 0, end: int | None = None
    ) -> AsyncIterator[memoryview]:
        """Bytes [start, end) of the blob, each chunk checked against `chunks` before any of
        it is yielded: BlobMissingError or BlobCorruptError instead of wrong bytes."""
        end = size if end is None else end
        if start >= end:
            return
        first = start // CHUNK_SIZE
        last = (end - 1) // CHUNK_SIZE
        read_from = first * CHUNK_SIZE
        read_to = min(size, (last + 1) * CHUNK_SIZE)
        try:
            result = await obstore.get_async(
                self.store, blob_key(digest), options={"range": (read_from, read_to)}
            )
        except (ObjectNotFound, FileNotFoundError) as exc:
            raise BlobMissingError(digest) from exc
        except Exception as exc:
            # A short object answers a range past its end with an error, not a 404.
            if await self._size(blob_key(digest)) is None:
                raise BlobMissingError(digest) from exc
            if "range" in str(exc).lower():
                raise BlobCorruptError(digest, read_from) from exc
            raise UnavailableError("the artifact store cannot be read") from exc
        index = first
        offset = read_from
        async for block in _blocks(result.stream(min_chunk_size=CHUNK_SIZE)):
            take = len(block)
            if (
                offset + take > read_to
                or block_digest(block) != chunks[index * 32 : index * 32 + 32]
            ):
                raise BlobCorruptError(digest, offset)
            lo = max(start - offset, 0)
            hi = min(end - offset, take)
            # Handed out in views of SEND_SIZE: the server's transport copies what the socket
            # does not take at once, so it holds at most one of these, not a whole chunk.
            with memoryview(block) as view:
                for at in range(lo, hi, SEND_SIZE):
                    yield view[at : min(at + SEND_SIZE, hi)]
            index += 1
            offset += take
        if offset < read_to:
            raise BlobCorruptError(digest, offset)

    async def rehash(self, digest: str) -> tuple[str, int]:
        """The SHA-256 and size of the stored object as it is now (BlobMissingError)."""
        try:
            result = await obstore.get_async(self.store, blob_key(digest))
        except (ObjectNotFound, FileNotFoundError) as exc:
            raise BlobMissingError(digest) from exc
        hasher = hashlib.sha256()
        size = 0
        async for piece in result.stream(min_chunk_size=CHUNK_SIZE):
            hasher.update(piece)
            size += len(piece)
        return hasher.hexdigest(), size

    async def iterate(self, prefix: str) -> AsyncIterator[StoredObject]:
        """Every object under `prefix` (BLOBS or UPLOADS), in pages."""
        async for page in obstore.list(self.store, prefix):
            for meta in page:
                yield StoredObject(
                    key=meta["path"], size=int(meta["size"]), last_modified=meta["last_modified"]
                )


async def _blocks(pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes | memoryview]:
    """The stream cut into CHUNK_SIZE blocks, the last one shorter. A block that lies
    within one piece is a view of it; only a block spread over pieces is copied together
    (a local store's pieces are whole chunks: no copy at all)."""
    buffer = bytearray()
    async for piece in pieces:
        view = memoryview(piece)
        if buffer:
            need = CHUNK_SIZE - len(buffer)
            buffer += view[:need]
            view = view[need:]
            if len(buffer) < CHUNK_SIZE:
                continue
            yield bytes(buffer)
            buffer.clear()
        while len(view) >= CHUNK_SIZE:
            yield view[:CHUNK_SIZE]
            view = view[CHUNK_SIZE:]
        buffer += view
    if buffer:
        yield bytes(buffer)


def block_digest(block: bytes | memoryview) -> bytes:
    return hashlib.sha256(block).digest()
