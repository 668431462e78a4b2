"""Which files a new version owns: uploaded blobs named by digest, or a snapshot of a
run's folder (a `runs:/<runId>/<path>` source). Each blob is held against gc until commit."""

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.artifacts.content import check_digest, hold_blobs, normalize_path
from app.artifacts.runs import run_files
from app.errors import ConflictError, NotFoundError, ValidationError
from app.tracking.models import Run

RUN_SOURCE = "runs:/"

Manifest = list[tuple[str, str, int]]


async def uploaded_files(session: AsyncSession, files: Sequence[tuple[str, str]]) -> Manifest:
    """(path, digest, size) of each file, refused by index: a bad or repeated path, a bad
    digest, or one no upload stored."""
    checked: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, (path, digest) in enumerate(files):
        path = normalize_path(f"files[{i}].path", path)
        if path in seen:
            raise ValidationError(f"files[{i}].path", f"{path!r} is listed twice")
        seen.add(path)
        checked.append((path, check_digest(f"files[{i}].digest", digest)))
    sizes = await hold_blobs(session, digests=[d for _, d in checked])
    for i, (_, digest) in enumerate(checked):
        if digest not in sizes:
            raise NotFoundError("blob", f"files[{i}].digest", digest)
    # A version's files are a set: listed by path whatever order they were given in.
    return sorted((path, digest, sizes[digest]) for path, digest in checked)


async def run_source_files(session: AsyncSession, source: str) -> Manifest:
    """The files of a run under a folder, named `runs:/<runId>/<path>`, relative to it."""
    run_id, _, folder = source.removeprefix(RUN_SOURCE).partition("/")
    folder = folder.rstrip("/")
    if folder:
        folder = normalize_path("source", folder)
    if await session.get(Run, run_id) is None:
        raise NotFoundError("run", "source", run_id)
    manifest = await run_manifest(session, run_id=run_id, folder=folder, field="source")
    if not manifest:
        raise ValidationError("source", f"run {run_id} has no files under {folder or '/'!r}")
    return manifest


async def run_manifest(session: AsyncSession, *, run_id: str, folder: str, field: str) -> Manifest:
    """A snapshot of the run's files under `folder`, relative to it, their blobs held
    against gc until commit."""
    found = await run_files(session, run_id=run_id, prefix=folder)
    sizes = await hold_blobs(session, digests=[d for _, d in found])
    if len(sizes) < len({d for _, d in found}):
        # Only when a concurrent delete of the run's file let gc collect it meanwhile.
        raise ConflictError(field, "the run's files changed meanwhile; try again")
    return [(path, digest, sizes[digest]) for path, digest in found]
