"""A run's artifacts: log, delete, read and list its files, and the batch reads and folder
entries the faces and the registry build on. Paths and content follow app/artifacts/content.py.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.artifacts.content import Located, normalize_path
from app.artifacts.models import RunArtifact
from app.artifacts.store import BlobStore, Uploaded
from app.artifacts.trees import FileTree
from app.errors import NotFoundError
from app.tracking.models import Run

RUN_FILES = FileTree(RunArtifact, owner="run_id", event_key="runId")


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
    return await RUN_FILES.put(
        session,
        blobs,
        owner_id=run_id,
        path=path,
        uploaded=uploaded,
        actor=actor,
        max_files=max_files,
    )


async def delete_artifact(
    session: AsyncSession, *, run_id: str, path: str, actor: str
) -> RunArtifact:
    """Remove one file from a run's artifacts (its content stays while anything else,
    a model version included, references it)."""
    await _get_run(session, run_id)
    return await RUN_FILES.delete(session, owner_id=run_id, path=path, actor=actor)


async def get_artifact(session: AsyncSession, *, run_id: str, path: str) -> Located:
    await _get_run(session, run_id)
    return await RUN_FILES.get(session, owner_id=run_id, path=path)


async def list_artifacts(
    session: AsyncSession, *, run_id: str, prefix: str | None = None
) -> Sequence[RunArtifact]:
    """The run's files under `prefix` (a folder, or one file), by path."""
    await _get_run(session, run_id)
    return await RUN_FILES.list(session, owner_id=run_id, prefix=prefix)


async def run_files(session: AsyncSession, *, run_id: str, prefix: str) -> list[tuple[str, str]]:
    """The run's files under folder `prefix` ("" for all) as (path relative to it, digest)."""
    found = await list_artifacts(session, run_id=run_id, prefix=prefix or None)
    if not prefix:
        return [(a.path, a.digest) for a in found]
    # A file named exactly `prefix` is not inside the folder.
    return [(a.path[len(prefix) + 1 :], a.digest) for a in found if a.path != prefix]


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
