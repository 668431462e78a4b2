"""A tree of files owned by one row: a run's artifacts, a logged model's files. Each is a
manifest table keyed (owner, path) naming blobs; the rules for writing, deleting, reading
and listing one are the same whatever owns it, so they live here once. The owner's own
checks (it exists, it may change) stay with the caller.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from app.artifacts.content import Located, hold_uploaded, normalize_path
from app.artifacts.models import Blob
from app.artifacts.store import BlobStore, Uploaded
from app.db.types import utcnow
from app.errors import NotFoundError, check_count
from app.events.models import EventType
from app.events.service import record_event

F = TypeVar("F", bound=SQLModel)


@dataclass(frozen=True)
class FileTree(Generic[F]):
    table: type[F]
    owner: str  # the owner's column in `table` ("run_id")
    event_key: str  # how events name the owner ("runId")

    def _column(self, name: str) -> Any:
        # The tables differ in their owner column, and share path, digest and size.
        return col(getattr(self.table, name))

    def _owner(self) -> Any:
        return self._column(self.owner)

    def _path(self) -> Any:
        return self._column("path")

    async def put(
        self,
        session: AsyncSession,
        blobs: BlobStore,
        *,
        owner_id: str,
        path: str,
        uploaded: Uploaded,
        actor: str,
        max_files: int,
    ) -> F:
        """Record `uploaded` at `path` (replacing what was there; a new path counts against
        `max_files`), with its ARTIFACTS_LOGGED event. `path` is normalised already."""
        await hold_uploaded(session, blobs, uploaded)
        existing: Any = await session.get(self.table, (owner_id, path))
        if existing is None:
            count = await session.scalar(
                select(func.count()).select_from(self.table).where(self._owner() == owner_id)
            )
            check_count("files", int(count or 0) + 1, max_files)
            row = self.table(
                **{self.owner: owner_id},
                path=path,
                digest=uploaded.digest,
                size=uploaded.size,
            )
            session.add(row)
        else:
            existing.digest, existing.size, existing.created_at = (
                uploaded.digest,
                uploaded.size,
                utcnow(),
            )
            row = existing
        await session.flush()
        await record_event(
            session,
            type=EventType.ARTIFACTS_LOGGED,
            actor=actor,
            payload={
                self.event_key: owner_id,
                "files": [{"path": path, "digest": uploaded.digest, "size": uploaded.size}],
            },
        )
        return row

    async def delete(self, session: AsyncSession, *, owner_id: str, path: str, actor: str) -> F:
        """Remove one file, with its ARTIFACT_DELETED event (the blob stays while anything
        else, a model version included, references it)."""
        path = normalize_path("path", path)
        row: Any = await session.get(self.table, (owner_id, path))
        if row is None:
            raise NotFoundError("artifact", "path", path)
        await session.delete(row)
        await session.flush()
        await record_event(
            session,
            type=EventType.ARTIFACT_DELETED,
            actor=actor,
            payload={self.event_key: owner_id, "path": path, "digest": row.digest},
        )
        result: F = row
        return result

    async def get(self, session: AsyncSession, *, owner_id: str, path: str) -> Located:
        path = normalize_path("path", path)
        digest, size = self._column("digest"), self._column("size")
        found = (
            await session.execute(
                select(digest, size, col(Blob.chunks))
                .join(Blob, col(Blob.digest) == digest)
                .where(self._owner() == owner_id, self._path() == path)
            )
        ).one_or_none()
        if found is None:
            raise NotFoundError("artifact", "path", path)
        return Located(path=path, digest=found[0], size=found[1], chunks=found[2])

    async def list(
        self, session: AsyncSession, *, owner_id: str, prefix: str | None = None
    ) -> Sequence[F]:
        """The files under `prefix` (a folder, or one file), by path."""
        statement = select(self.table).where(self._owner() == owner_id)
        if prefix:
            prefix = normalize_path("path", prefix)
            statement = statement.where(
                (self._path() == prefix)
                | (func.substr(self._path(), 1, len(prefix) + 1) == prefix + "/")
            )
        return (await session.scalars(statement.order_by(self._path()))).all()
