"""The files of models: a logged model's files (log, delete, read, list, like a run's) and a
registered version's file set (written once with the version, then only read).
Paths and content follow app/artifacts/content.py.
"""

from collections.abc import Sequence

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.artifacts.content import Located, normalize_path
from app.artifacts.models import Blob, LoggedModelArtifact, VersionFile
from app.artifacts.store import BlobStore, Uploaded
from app.artifacts.trees import FileTree
from app.errors import NotFoundError
from app.registry.models import ModelVersion
from app.tracking.logged_model_models import LoggedModel

MODEL_FILES = FileTree(LoggedModelArtifact, owner="model_id", event_key="modelId")


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
    return await MODEL_FILES.put(
        session,
        blobs,
        owner_id=model_id,
        path=path,
        uploaded=uploaded,
        actor=actor,
        max_files=max_files,
    )


async def delete_model_artifact(
    session: AsyncSession, *, model_id: str, path: str, actor: str
) -> LoggedModelArtifact:
    """Remove one file from a logged model (versions that snapshotted it keep theirs)."""
    await _get_logged_model(session, model_id)
    return await MODEL_FILES.delete(session, owner_id=model_id, path=path, actor=actor)


async def get_model_artifact(session: AsyncSession, *, model_id: str, path: str) -> Located:
    await _get_logged_model(session, model_id)
    return await MODEL_FILES.get(session, owner_id=model_id, path=path)


async def list_model_artifacts(
    session: AsyncSession, *, model_id: str, prefix: str | None = None
) -> Sequence[LoggedModelArtifact]:
    """The logged model's files under `prefix` (a folder, or one file), by path."""
    await _get_logged_model(session, model_id)
    return await MODEL_FILES.list(session, owner_id=model_id, prefix=prefix)


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
