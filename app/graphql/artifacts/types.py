"""GraphQL types of stored files: a run's artifact tree and a model version's file set."""

from urllib.parse import quote

import strawberry

from app.artifacts import models
from app.artifacts.runs import Entry
from app.graphql.context import Ctx
from app.graphql.scalars import Long


def absolute(info: Ctx, path: str) -> str:
    """`path` on the server that answered this request, as its client reached it; relative
    when there is no request (an operation run in process)."""
    request = info.context.request
    if request is None:
        return path
    return str(request.base_url).rstrip("/") + path


def blob_url(info: Ctx, digest: str) -> str:
    return absolute(info, f"/artifacts/blobs/{digest}")


def run_artifact_url(info: Ctx, run_id: str, path: str) -> str:
    return absolute(info, f"/artifacts/runs/{quote(run_id)}/{quote(path)}")


@strawberry.type(description="A file or folder in a run's artifacts.")
class ArtifactEntry:
    path: str = strawberry.field(description="From the run's root, '/'-separated.")
    is_dir: bool
    size: Long | None = strawberry.field(description="Bytes; null for a folder.")
    digest: str | None = strawberry.field(description="SHA-256 of the content; null for a folder.")
    download_url: str | None = strawberry.field(
        description="Where to GET the file (Range supported, ETag = digest); null for a folder."
    )

    @classmethod
    def of(cls, info: Ctx, run_id: str, entry: Entry) -> "ArtifactEntry":
        file = entry.file
        if file is None:
            return cls(path=entry.path, is_dir=True, size=None, digest=None, download_url=None)
        return cls(
            path=entry.path,
            is_dir=False,
            size=Long(file.size),
            digest=file.digest,
            download_url=run_artifact_url(info, run_id, file.path),
        )


@strawberry.type(description="One file of a model version: fixed when it was registered.")
class VersionFile:
    path: str = strawberry.field(description="Relative to the version's root.")
    digest: str = strawberry.field(description="SHA-256 of the content.")
    size: Long
    download_url: str = strawberry.field(
        description="Where to GET the content (Range supported, ETag = digest)."
    )

    @classmethod
    def of(cls, info: Ctx, f: models.VersionFile) -> "VersionFile":
        return cls(
            path=f.path, digest=f.digest, size=Long(f.size), download_url=blob_url(info, f.digest)
        )


@strawberry.input(
    description="A file of a new version: content uploaded by PUT /artifacts/uploads."
)
class VersionFileInput:
    path: str = strawberry.field(description="Relative, '/'-separated.")
    digest: str = strawberry.field(description="The SHA-256 the upload answered with.")
