"""Run and logged-model artifacts and the blobs behind them: store, log, list, delete,
collect, verify.

An upload is three steps, so garbage collection can never remove content something
references: the bytes go to a temporary object; the digest is CLAIMED (its Blob row
upserted with a fresh last_seen) in a short transaction of its own; then the object is
moved to its blob key. gc deletes a blob only inside a transaction holding its row, only
when nothing references it and its last claim is older than the grace period. A claim
therefore lands either before gc looks (gc skips it) or after gc deleted the row (the
claim re-inserts it and the move re-creates the object). Recording the manifest row
re-claims the blob and checks its object in the same transaction, as a last guard.
"""

import hashlib
import unicodedata
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.artifacts.errors import BlobMissingError
from app.artifacts.models import (
    CHUNK_SIZE,
    PATH_LIMIT,
    Blob,
    LoggedModelArtifact,
    RunArtifact,
    VersionFile,
)
from app.artifacts.store import BLOBS, UPLOADS, BlobStore, Uploaded
from app.db import Database
from app.db.dialect import core_table, is_postgres, upsert_insert
from app.db.types import utcnow
from app.errors import ConflictError, NotFoundError, ValidationError, check_count, check_name
from app.events.models import EventType
from app.events.service import record_event
from app.registry.models import ModelVersion
from app.tracking.logged_model_models import LoggedModel
from app.tracking.models import Run

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


async def check_run(session: AsyncSession, *, run_id: str) -> None:
    """NotFoundError unless the run exists."""
    await _get_run(session, run_id)


async def _get_run(session: AsyncSession, run_id: str) -> Run:
    run = await session.get(Run, run_id)
    if run is None:
        raise NotFoundError("run", "runId", run_id)
    return run


async def log_artifact(
    session: AsyncSession,
    blobs: BlobStore,
    *,
    run_id: str,
    path: str,
    uploaded: Uploaded,
    actor: str,
    max_files: int,
) -> RunArtifact:
    """Record `uploaded` at `path` in the run's artifacts (replacing what was there), with
    its ARTIFACTS_LOGGED event."""
    path = normalize_path("path", path)
    await _get_run(session, run_id)
    await _hold_uploaded(session, blobs, uploaded)
    existing = await session.get(RunArtifact, (run_id, path))
    if existing is None:
        count = await session.scalar(
            select(func.count()).select_from(RunArtifact).where(col(RunArtifact.run_id) == run_id)
        )
        check_count("files", int(count or 0) + 1, max_files)
        artifact = RunArtifact(run_id=run_id, path=path, digest=uploaded.digest, size=uploaded.size)
        session.add(artifact)
    else:
        existing.digest, existing.size, existing.created_at = (
            uploaded.digest,
            uploaded.size,
            utcnow(),
        )
        artifact = existing
    await session.flush()
    await record_event(
        session,
        type=EventType.ARTIFACTS_LOGGED,
        actor=actor,
        payload={
            "runId": run_id,
            "files": [{"path": path, "digest": uploaded.digest, "size": uploaded.size}],
        },
    )
    return artifact


async def _hold_uploaded(session: AsyncSession, blobs: BlobStore, uploaded: Uploaded) -> None:
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


async def delete_artifact(
    session: AsyncSession, *, run_id: str, path: str, actor: str
) -> RunArtifact:
    """Remove one file from a run's artifacts (its content stays while anything else,
    a model version included, references it)."""
    path = normalize_path("path", path)
    await _get_run(session, run_id)
    artifact = await session.get(RunArtifact, (run_id, path))
    if artifact is None:
        raise NotFoundError("artifact", "path", path)
    await session.delete(artifact)
    await session.flush()
    await record_event(
        session,
        type=EventType.ARTIFACT_DELETED,
        actor=actor,
        payload={"runId": run_id, "path": path, "digest": artifact.digest},
    )
    return artifact


@dataclass(frozen=True)
class Located:
    """A file and the facts needed to read it back verified."""

    path: str
    digest: str
    size: int
    chunks: bytes


async def get_artifact(session: AsyncSession, *, run_id: str, path: str) -> Located:
    path = normalize_path("path", path)
    await _get_run(session, run_id)
    row = (
        await session.execute(
            select(col(RunArtifact.digest), col(RunArtifact.size), col(Blob.chunks))
            .join(Blob, col(Blob.digest) == col(RunArtifact.digest))
            .where(col(RunArtifact.run_id) == run_id, col(RunArtifact.path) == path)
        )
    ).one_or_none()
    if row is None:
        raise NotFoundError("artifact", "path", path)
    return Located(path=path, digest=row[0], size=row[1], chunks=row[2])


async def get_blob(session: AsyncSession, *, digest: str) -> Located:
    digest = check_digest("digest", digest)
    blob = await session.get(Blob, digest)
    if blob is None:
        raise NotFoundError("blob", "digest", digest)
    return Located(path=digest, digest=digest, size=blob.size, chunks=blob.chunks)


async def list_artifacts(
    session: AsyncSession, *, run_id: str, prefix: str | None = None
) -> Sequence[RunArtifact]:
    """The run's files under `prefix` (a folder, or one file), by path."""
    await _get_run(session, run_id)
    statement = select(RunArtifact).where(col(RunArtifact.run_id) == run_id)
    if prefix:
        prefix = normalize_path("path", prefix)
        statement = statement.where(
            (col(RunArtifact.path) == prefix)
            | (func.substr(col(RunArtifact.path), 1, len(prefix) + 1) == prefix + "/")
        )
    return (await session.scalars(statement.order_by(col(RunArtifact.path)))).all()


async def _get_logged_model(session: AsyncSession, model_id: str) -> LoggedModel:
    model = await session.get(LoggedModel, model_id)
    if model is None or model.deleted_at is not None:
        raise NotFoundError("logged model", "modelId", model_id)
    return model


async def check_logged_model(session: AsyncSession, *, model_id: str) -> None:
    """NotFoundError unless the logged model exists (and is not deleted)."""
    await _get_logged_model(session, model_id)


async def log_model_artifact(
    session: AsyncSession,
    blobs: BlobStore,
    *,
    model_id: str,
    path: str,
    uploaded: Uploaded,
    actor: str,
    max_files: int,
) -> LoggedModelArtifact:
    """Record `uploaded` at `path` among a logged model's files (replacing what was there),
    with its ARTIFACTS_LOGGED event."""
    path = normalize_path("path", path)
    await _get_logged_model(session, model_id)
    await _hold_uploaded(session, blobs, uploaded)
    existing = await session.get(LoggedModelArtifact, (model_id, path))
    if existing is None:
        count = await session.scalar(
            select(func.count())
            .select_from(LoggedModelArtifact)
            .where(col(LoggedModelArtifact.model_id) == model_id)
        )
        check_count("files", int(count or 0) + 1, max_files)
        artifact = LoggedModelArtifact(
            model_id=model_id, path=path, digest=uploaded.digest, size=uploaded.size
        )
        session.add(artifact)
    else:
        existing.digest, existing.size, existing.created_at = (
            uploaded.digest,
            uploaded.size,
            utcnow(),
        )
        artifact = existing
    await session.flush()
    await record_event(
        session,
        type=EventType.ARTIFACTS_LOGGED,
        actor=actor,
        payload={
            "modelId": model_id,
            "files": [{"path": path, "digest": uploaded.digest, "size": uploaded.size}],
        },
    )
    return artifact


async def delete_model_artifact(
    session: AsyncSession, *, model_id: str, path: str, actor: str
) -> LoggedModelArtifact:
    """Remove one file from a logged model (versions that snapshotted it keep theirs)."""
    path = normalize_path("path", path)
    await _get_logged_model(session, model_id)
    artifact = await session.get(LoggedModelArtifact, (model_id, path))
    if artifact is None:
        raise NotFoundError("artifact", "path", path)
    await session.delete(artifact)
    await session.flush()
    await record_event(
        session,
        type=EventType.ARTIFACT_DELETED,
        actor=actor,
        payload={"modelId": model_id, "path": path, "digest": artifact.digest},
    )
    return artifact


async def get_model_artifact(session: AsyncSession, *, model_id: str, path: str) -> Located:
    path = normalize_path("path", path)
    await _get_logged_model(session, model_id)
    row = (
        await session.execute(
            select(col(LoggedModelArtifact.digest), col(LoggedModelArtifact.size), col(Blob.chunks))
            .join(Blob, col(Blob.digest) == col(LoggedModelArtifact.digest))
            .where(
                col(LoggedModelArtifact.model_id) == model_id,
                col(LoggedModelArtifact.path) == path,
            )
        )
    ).one_or_none()
    if row is None:
        raise NotFoundError("artifact", "path", path)
    return Located(path=path, digest=row[0], size=row[1], chunks=row[2])


async def list_model_artifacts(
    session: AsyncSession, *, model_id: str, prefix: str | None = None
) -> Sequence[LoggedModelArtifact]:
    """The logged model's files under `prefix` (a folder, or one file), by path."""
    await _get_logged_model(session, model_id)
    statement = select(LoggedModelArtifact).where(col(LoggedModelArtifact.model_id) == model_id)
    if prefix:
        prefix = normalize_path("path", prefix)
        statement = statement.where(
            (col(LoggedModelArtifact.path) == prefix)
            | (func.substr(col(LoggedModelArtifact.path), 1, len(prefix) + 1) == prefix + "/")
        )
    return (await session.scalars(statement.order_by(col(LoggedModelArtifact.path)))).all()


async def artifacts_by_models(
    session: AsyncSession, *, model_ids: Sequence[str]
) -> dict[str, list[LoggedModelArtifact]]:
    """Each logged model's files, by path."""
    out: dict[str, list[LoggedModelArtifact]] = {}
    for row in await session.scalars(
        select(LoggedModelArtifact)
        .where(col(LoggedModelArtifact.model_id).in_(list(model_ids)))
        .order_by(col(LoggedModelArtifact.model_id), col(LoggedModelArtifact.path))
    ):
        out.setdefault(row.model_id, []).append(row)
    return out


async def get_version_file(session: AsyncSession, *, version_id: int, path: str) -> Located:
    """One file of a model version, with what a verified read needs."""
    path = normalize_path("path", path)
    row = (
        await session.execute(
            select(col(VersionFile.digest), col(VersionFile.size), col(Blob.chunks))
            .join(Blob, col(Blob.digest) == col(VersionFile.digest))
            .where(col(VersionFile.version_id) == version_id, col(VersionFile.path) == path)
        )
    ).one_or_none()
    if row is None:
        raise NotFoundError("artifact", "path", path)
    return Located(path=path, digest=row[0], size=row[1], chunks=row[2])


async def version_files(
    session: AsyncSession, *, registered_model_id: int, version: int
) -> tuple[int, list[VersionFile]]:
    """The id and files (by path) of version `version` of the registered model with this
    id, or NotFoundError."""
    if not (0 < registered_model_id < 2**31 and 0 < version < 2**31):
        # Past the columns' range: no such version (and no out-of-range parameter).
        raise NotFoundError("model version", "version", f"{registered_model_id}/{version}")
    version_id = await session.scalar(
        select(col(ModelVersion.id)).where(
            col(ModelVersion.model_id) == registered_model_id,
            col(ModelVersion.version) == version,
        )
    )
    if version_id is None:
        raise NotFoundError("model version", "version", f"{registered_model_id}/{version}")
    found = await files_by_versions(session, version_ids=[version_id])
    return version_id, found.get(version_id, [])


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


async def run_files(session: AsyncSession, *, run_id: str, prefix: str) -> list[tuple[str, str]]:
    """The run's files under folder `prefix` ("" for all) as (path relative to it, digest)."""
    found = await list_artifacts(session, run_id=run_id, prefix=prefix or None)
    if not prefix:
        return [(a.path, a.digest) for a in found]
    # A file named exactly `prefix` is not inside the folder.
    return [(a.path[len(prefix) + 1 :], a.digest) for a in found if a.path != prefix]


async def write_version_files(
    session: AsyncSession, *, version_id: int, files: Sequence[tuple[str, str, int]]
) -> None:
    """A version's file set, in the caller's unit of work; never changed afterwards."""
    if files:
        await session.execute(
            insert(VersionFile),
            [
                {"version_id": version_id, "path": path, "digest": digest, "size": size}
                for path, digest, size in files
            ],
        )


async def files_by_versions(
    session: AsyncSession, *, version_ids: Sequence[int]
) -> dict[int, list[VersionFile]]:
    """Each version's files, by path."""
    rows = await session.scalars(
        select(VersionFile)
        .where(col(VersionFile.version_id).in_(version_ids))
        .order_by(col(VersionFile.version_id), col(VersionFile.path))
    )
    out: dict[int, list[VersionFile]] = {}
    for row in rows:
        out.setdefault(row.version_id, []).append(row)
    return out


async def artifacts_by_runs(
    session: AsyncSession, *, run_ids: Sequence[str], prefix: str
) -> dict[str, list[RunArtifact]]:
    """Each run's files under folder `prefix` ("" for all), by path."""
    statement = select(RunArtifact).where(col(RunArtifact.run_id).in_(run_ids))
    if prefix:
        statement = statement.where(
            func.substr(col(RunArtifact.path), 1, len(prefix) + 1) == prefix + "/"
        )
    out: dict[str, list[RunArtifact]] = {}
    for row in await session.scalars(statement.order_by(col(RunArtifact.path))):
        out.setdefault(row.run_id, []).append(row)
    return out


@dataclass(frozen=True)
class Entry:
    """A direct child of a folder: a file (with its facts) or a folder (without)."""

    path: str
    file: RunArtifact | None


def children(files: Sequence[RunArtifact], prefix: str) -> list[Entry]:
    """The direct children of folder `prefix` among `files` (all under it), by path."""
    start = len(prefix) + 1 if prefix else 0
    entries: dict[str, Entry] = {}
    for artifact in files:
        name, slash, _rest = artifact.path[start:].partition("/")
        path = artifact.path[:start] + name
        if slash:
            entries.setdefault(path, Entry(path=path, file=None))
        else:
            entries[path] = Entry(path=path, file=artifact)
    return [entries[k] for k in sorted(entries)]


@dataclass
class GcReport:
    blobs_deleted: list[str] = field(default_factory=list)
    uploads_deleted: list[str] = field(default_factory=list)
    blobs_kept: int = 0


async def collect_garbage(
    db: Database, blobs: BlobStore, *, grace: timedelta, upload_grace: timedelta | None = None
) -> GcReport:
    """Delete blobs nothing references, unclaimed for `grace`, and upload leftovers older
    than `upload_grace` (default: `grace`). A temporary object exists only once its bytes
    are complete, until its move: its age is what protects an upload in flight."""
    report = GcReport()
    now = utcnow()
    cutoff = now - grace
    upload_cutoff = now - (grace if upload_grace is None else upload_grace)
    async with db.read(background=True) as session:
        candidates = list(
            await session.scalars(
                select(col(Blob.digest)).where(
                    col(Blob.last_seen) <= cutoff,
                    ~exists().where(col(RunArtifact.digest) == col(Blob.digest)),
                    ~exists().where(col(VersionFile.digest) == col(Blob.digest)),
                    ~exists().where(col(LoggedModelArtifact.digest) == col(Blob.digest)),
                )
            )
        )
    for digest in candidates:
        # One transaction per blob, deciding again on the locked row: an upload's claim
        # or a new reference since the scan above wins.
        async with db.unit_of_work() as session:
            statement = select(Blob).where(
                col(Blob.digest) == digest,
                col(Blob.last_seen) <= cutoff,
                ~exists().where(col(RunArtifact.digest) == digest),
                ~exists().where(col(VersionFile.digest) == digest),
                ~exists().where(col(LoggedModelArtifact.digest) == digest),
            )
            if is_postgres(session):
                statement = statement.with_for_update()
            blob = (await session.scalars(statement)).one_or_none()
            if blob is None:
                report.blobs_kept += 1
                continue
            await blobs.delete(digest)
            await session.execute(delete(Blob).where(col(Blob.digest) == digest))
            report.blobs_deleted.append(digest)
    async for obj in blobs.iterate(UPLOADS):
        if obj.last_modified <= upload_cutoff:
            await blobs.discard(obj.key)
            report.uploads_deleted.append(obj.key)
    return report


@dataclass
class VerifyReport:
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupt)


async def verify(db: Database, blobs: BlobStore) -> VerifyReport:
    """Re-hash every blob: those missing from the store, those whose bytes changed, and
    objects no Blob row names (harmless; gc of a crashed move leaves them)."""
    report = VerifyReport()
    async with db.read(background=True) as session:
        rows = (await session.execute(select(col(Blob.digest), col(Blob.size)))).all()
        known = {digest: size for digest, size in rows}
    for digest, size in sorted(known.items()):
        report.checked += 1
        try:
            actual, actual_size = await blobs.rehash(digest)
        except BlobMissingError:
            report.missing.append(digest)
            continue
        if actual != digest or actual_size != size:
            report.corrupt.append(digest)
    async for obj in blobs.iterate(BLOBS):
        name = obj.key.rsplit("/", 1)[-1]
        if name not in known:
            report.orphaned.append(name)
    return report
