"""Store upkeep: collect blobs nothing references (and upload leftovers), and verify every
blob against its digest. Why a claimed upload is never collected: app/artifacts/content.py.
"""

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import delete, exists, select
from sqlmodel import col

from app.artifacts.errors import BlobMissingError
from app.artifacts.models import Blob, LoggedModelArtifact, RunArtifact, VersionFile
from app.artifacts.store import BLOBS, UPLOADS, BlobStore
from app.db import Database
from app.db.dialect import is_postgres
from app.db.types import utcnow


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
