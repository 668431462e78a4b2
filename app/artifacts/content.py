"""The content store's rules: artifact paths, digests, and streaming content in once per
SHA-256; the verified-read facts (Located) and folder listings every tree shares.

An upload is three steps, so garbage collection can never remove content something
references: the bytes go to a temporary object; the digest is CLAIMED (its Blob row
upserted with a fresh last_seen) in a short transaction of its own; then the object is
moved to its blob key. gc (app/artifacts/upkeep.py) deletes a blob only inside a
transaction holding its row, only when nothing references it and its last claim is older
than the grace period. A claim therefore lands either before gc looks (gc skips it) or
after gc deleted the row (the claim re-inserts it and the move re-creates the object).
Recording the manifest row re-claims the blob and checks its object in the same
transaction (hold_uploaded), as a last guard.
"""

import hashlib
import unicodedata
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.artifacts.models import CHUNK_SIZE, PATH_LIMIT, Blob
from app.artifacts.store import BlobStore, Uploaded
from app.db import Database
from app.db.dialect import core_table, is_postgres, upsert_insert
from app.db.types import utcnow
from app.errors import ConflictError, NotFoundError, ValidationError, check_name

SHA256_HEX = frozenset("0123456789abcdef")


def normalize_path(field: str, value: str) -> str:
    """A relative POSIX path in NFC, or a ValidationError naming `field`: no absolute
    paths, backslashes, empty, `.` or `..` parts, control or invisible characters."""
    check_name(field, value, PATH_LIMIT)
    if "\\" in value:
        raise ValidationError(field, "must use '/' as its separator, not '\\'")
    if value.startswith("/"):
        raise ValidationError(field, "must be a relative path")
    path = unicodedata.normalize("NFC", value)
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise ValidationError(field, "must not contain empty, '.' or '..' parts")
    if any(part != part.strip() for part in path.split("/")):
        raise ValidationError(field, "parts must not start or end with spaces")
    return path


def check_digest(field: str, value: str) -> str:
    """A SHA-256 in lowercase hex (a `sha256:` prefix is accepted)."""
    digest = value.strip().lower().removeprefix("sha256:")
    if len(digest) != 64 or not SHA256_HEX.issuperset(digest):
        raise ValidationError(field, "must be a SHA-256 as 64 hexadecimal digits")
    return digest


def manifest_digest(entries: Iterable[tuple[str, str, int]]) -> str:
    """One SHA-256 over a file set: lines `<path>\\t<digest>\\t<size>\\n` sorted by path,
    so two sets of identical files have identical digests whatever their order."""
    hasher = hashlib.sha256()
    for path, digest, size in sorted(entries):
        hasher.update(f"{path}\t{digest}\t{size}\n".encode())
    return hasher.hexdigest()


async def claim(session: AsyncSession, *, uploaded: Uploaded) -> None:
    """Upsert the Blob row of `uploaded` with a fresh last_seen (see the module doc)."""
    now = utcnow()
    table = core_table(Blob)
    statement = upsert_insert(session, table).values(
        digest=uploaded.digest,
        size=uploaded.size,
        chunk_size=CHUNK_SIZE,
        chunks=uploaded.chunks,
        created_at=now,
        last_seen=now,
    )
    await session.execute(
        statement.on_conflict_do_update(index_elements=["digest"], set_={"last_seen": now})
    )


Hook = Callable[[], Awaitable[None]]


async def store_content(
    db: Database,
    blobs: BlobStore,
    data: AsyncIterable[bytes],
    *,
    max_bytes: int,
    declared: str | None = None,
    declared_field: str = "sha256",
    after_claim: Hook | None = None,
) -> Uploaded:
    """Stream `data` into the store once per content; refuse it (leaving nothing) when
    `declared` is given and the bytes hash otherwise. `after_claim` is a test seam."""
    expected = check_digest(declared_field, declared) if declared is not None else None
    uploaded = await blobs.put_stream(data, max_bytes=max_bytes)
    if expected is not None and uploaded.digest != expected:
        await blobs.discard(uploaded.temp)
        raise ValidationError(
            declared_field,
            f"does not match the content: declared {expected}, received {uploaded.digest}",
        )
    try:
        async with db.unit_of_work() as session:
            await claim(session, uploaded=uploaded)
        if after_claim is not None:
            await after_claim()
        await blobs.settle(uploaded)
    except BaseException:
        await blobs.discard(uploaded.temp)
        raise
    return uploaded


async def hold_uploaded(session: AsyncSession, blobs: BlobStore, uploaded: Uploaded) -> None:
    """Re-claim `uploaded` in the caller's transaction: the row is then held against gc
    until commit, so the object checked here is still there when a reference to it
    becomes visible."""
    await claim(session, uploaded=uploaded)
    if is_postgres(session):
        await session.execute(
            select(col(Blob.digest)).where(col(Blob.digest) == uploaded.digest).with_for_update()
        )
    if not await blobs.exists(uploaded.digest):
        raise ConflictError("path", "the content was collected meanwhile; upload it again")


async def hold_blobs(session: AsyncSession, *, digests: Iterable[str]) -> dict[str, int]:
    """The size of each of `digests` that is stored, its row refreshed and locked until
    commit: gc skips it (recent last_seen), or already removed it (then it is absent here)."""
    wanted = sorted(set(digests))
    if not wanted:
        return {}
    rows = await session.execute(
        update(Blob)
        .where(col(Blob.digest).in_(wanted))
        .values(last_seen=utcnow())
        .returning(col(Blob.digest), col(Blob.size))
    )
    return {digest: size for digest, size in rows.all()}


@dataclass(frozen=True)
class Located:
    """A file and the facts needed to read it back verified."""

    path: str
    digest: str
    size: int
    chunks: bytes


async def get_blob(session: AsyncSession, *, digest: str) -> Located:
    digest = check_digest("digest", digest)
    blob = await session.get(Blob, digest)
    if blob is None:
        raise NotFoundError("blob", "digest", digest)
    return Located(path=digest, digest=digest, size=blob.size, chunks=blob.chunks)


@dataclass(frozen=True)
class Listed:
    """A direct child of a folder: a file with its size, or a folder (size None)."""

    path: str
    is_dir: bool
    size: int | None = None


def folder_listing(files: Iterable[tuple[str, int]], prefix: str) -> list[Listed]:
    """The direct children of folder `prefix` ("" for the root) among (path, size) of
    files, by path. A file named exactly `prefix` is no folder: it has no children."""
    start = len(prefix) + 1 if prefix else 0
    entries: dict[str, Listed] = {}
    for path, size in files:
        if prefix and not path.startswith(prefix + "/"):
            continue
        name, slash, _rest = path[start:].partition("/")
        child = path[:start] + name
        if slash:
            entries.setdefault(child, Listed(path=child, is_dir=True))
        else:
            entries[child] = Listed(path=child, is_dir=False, size=size)
    return [entries[k] for k in sorted(entries)]
