"""MLflow's artifact proxy over the content-addressed store:
`/api/2.0/mlflow-artifacts/artifacts[/<path>]` lists (GET `?path=`), downloads (GET),
uploads (PUT, raw bytes streamed with constant memory) and deletes (DELETE) the files of
runs and logged models, and serves registered versions' files read-only; plus
`/api/3.0/mlflow/server-info`, which the client's artifact layer asks before transfers.

Paths are the `mlflow-artifacts:/` URIs of app.mlflow.uris without their scheme. Every
read is verified chunk by chunk: a missing or corrupt blob is refused before the first
byte (INVALID_STATE, which the client does not retry: a retry cannot mend stored bytes)
or, past the first chunk, cuts the response short of its Content-Length; never wrong
bytes."""

import mimetypes
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response, StreamingResponse

from app.artifacts import content, model_files, runs
from app.artifacts.errors import BlobCorruptError, BlobMissingError
from app.artifacts.store import BlobStore
from app.errors import NotFoundError
from app.http.artifacts import verified_body
from app.mlflow.uris import (
    LoggedModelArtifacts,
    RunArtifacts,
    VersionArtifacts,
    parse_artifact_path,
)
from app.mlflow.wire import Call, MlflowError, endpoint, invalid
from app.tracking import service as tracking_service
from app.tracking.logged_model_models import LoggedModel
from app.tracking.models import Run

SERVICE = "mlflow-artifacts"
SERVER_INFO = {
    "store_type": "SqlStore",
    "workspaces_enabled": False,
    "multipart_uploads_enabled": False,
    "multipart_downloads_enabled": False,
}


def _parse(path: str) -> RunArtifacts | LoggedModelArtifacts | VersionArtifacts | None:
    try:
        return parse_artifact_path(path)
    except ValueError:
        # A part that str.isdigit() takes for a number but int() does not ("²").
        return None


def _where(path: str) -> RunArtifacts | LoggedModelArtifacts | VersionArtifacts:
    location = _parse(path)
    if location is None:
        raise MlflowError(
            "RESOURCE_DOES_NOT_EXIST",
            f"{path!r} is not a run's, a logged model's or a model version's artifact path",
        )
    return location


async def _check_owner(
    session: AsyncSession,
    location: RunArtifacts | LoggedModelArtifacts,
    *,
    write: bool = False,
) -> None:
    """NotFound unless the run or logged model exists in the experiment the path names; a
    deleted run's files are read but not changed (INVALID_STATE)."""
    if isinstance(location, RunArtifacts):
        run = await session.get(Run, location.run_id)
        if run is None or run.experiment_id != location.experiment_id:
            raise NotFoundError("run", "path", location.run_id)
        if write:
            await tracking_service.require_active_run(session, run_id=location.run_id, field="path")
    else:
        model = await session.get(LoggedModel, location.model_id)
        if (
            model is None
            or model.deleted_at is not None
            or model.experiment_id != location.experiment_id
        ):
            raise NotFoundError("logged model", "path", location.model_id)


def _immutable(location: VersionArtifacts) -> MlflowError:
    return MlflowError(
        "INVALID_STATE",
        f"version {location.version} of registered model {location.registered_model_id}: "
        "a registered version's files never change",
    )


@endpoint("GET", "artifacts", operation="artifacts.download", service=SERVICE)
async def list_artifacts(call: Call) -> dict[str, Any]:
    path = (call.text("path") or "").strip("/")
    location = _parse(path) if path else None
    if location is None:
        # Above any run's or model's tree (the store root, an experiment): nothing listed.
        return {"files": []}
    prefix = location.path.strip("/")
    if prefix:
        prefix = content.normalize_path("path", prefix)
    files: Sequence[tuple[str, int]]
    async with call.db.read() as session:
        if isinstance(location, VersionArtifacts):
            _, owned = await model_files.version_files(
                session,
                registered_model_id=location.registered_model_id,
                version=location.version,
            )
            files = [(f.path, f.size) for f in owned]
        else:
            await _check_owner(session, location)
            if isinstance(location, RunArtifacts):
                found: Sequence[Any] = await runs.list_artifacts(
                    session, run_id=location.run_id, prefix=prefix or None
                )
            else:
                found = await model_files.list_model_artifacts(
                    session, model_id=location.model_id, prefix=prefix or None
                )
            files = [(f.path, f.size) for f in found]
    entries = content.folder_listing(files, prefix)
    return {
        "files": [
            {"path": e.path.rsplit("/", 1)[-1], "is_dir": True}
            if e.is_dir
            else {"path": e.path.rsplit("/", 1)[-1], "is_dir": False, "file_size": e.size}
            for e in entries
        ]
    }


@endpoint("GET", "artifacts/{path:artifact_path}", operation="artifacts.download", service=SERVICE)
async def download_artifact(call: Call) -> Response:
    location = _where(call.path_params["path"])
    async with call.db.read() as session:
        if isinstance(location, VersionArtifacts):
            version_id, _ = await model_files.version_files(
                session,
                registered_model_id=location.registered_model_id,
                version=location.version,
            )
            found = await model_files.get_version_file(
                session, version_id=version_id, path=location.path
            )
        else:
            await _check_owner(session, location)
            if isinstance(location, RunArtifacts):
                found = await runs.get_artifact(session, run_id=location.run_id, path=location.path)
            else:
                found = await model_files.get_model_artifact(
                    session, model_id=location.model_id, path=location.path
                )
    return await _send(call, found)


async def _send(call: Call, found: content.Located) -> Response:
    headers = {
        "ETag": f'"{found.digest}"',
        "X-Content-SHA256": found.digest,
        "Content-Length": str(found.size),
    }
    media_type = mimetypes.guess_type(found.path)[0] or "application/octet-stream"
    if found.size == 0 or call.request.method == "HEAD":
        return Response(status_code=200, headers=headers, media_type=media_type)
    blobs: BlobStore = call.state.blobs
    parts = blobs.open(found.digest, size=found.size, chunks=found.chunks)
    try:
        body = await verified_body(parts, path=call.request.url.path, metrics=call.state.metrics)
    except (BlobMissingError, BlobCorruptError) as error:
        # A 4xx: the client retries every 5xx, and a retry cannot mend stored bytes.
        raise MlflowError("INVALID_STATE", error.message) from None
    return StreamingResponse(body, status_code=200, headers=headers, media_type=media_type)


@endpoint(
    "PUT",
    "artifacts/{path:artifact_path}",
    operation="artifacts.upload",
    service=SERVICE,
    raw_body=True,
)
async def upload_artifact(call: Call) -> dict[str, Any]:
    location = _where(call.path_params["path"])
    if isinstance(location, VersionArtifacts):
        raise _immutable(location)
    if not location.path:
        raise invalid("An artifact upload needs a file path inside the run's or model's tree")
    path = content.normalize_path("path", location.path)
    # Before reading a byte of the body: a wrong run or model is refused at once.
    async with call.db.read() as session:
        await _check_owner(session, location, write=True)
    settings = call.settings
    uploaded = await content.store_content(
        call.db,
        call.state.blobs,
        call.request.stream(),
        max_bytes=settings.max_artifact_bytes,
    )
    async with call.db.unit_of_work() as session:
        if isinstance(location, RunArtifacts):
            await runs.log_artifact(
                session,
                call.state.blobs,
                run_id=location.run_id,
                path=path,
                uploaded=uploaded,
                actor=call.principal.actor,
                max_files=settings.max_artifacts_per_run,
            )
        else:
            await model_files.log_model_artifact(
                session,
                call.state.blobs,
                model_id=location.model_id,
                path=path,
                uploaded=uploaded,
                actor=call.principal.actor,
                max_files=settings.max_artifacts_per_run,
            )
    return {}


@endpoint(
    "DELETE",
    "artifacts/{path:artifact_path}",
    operation="artifacts.delete",
    service=SERVICE,
    raw_body=True,
)
async def delete_artifacts(call: Call) -> dict[str, Any]:
    """A file, or every file under a folder (MLflow deletes recursively)."""
    location = _where(call.path_params["path"])
    if isinstance(location, VersionArtifacts):
        raise _immutable(location)
    prefix = content.normalize_path("path", location.path) if location.path else None
    actor = call.principal.actor
    async with call.db.unit_of_work() as session:
        await _check_owner(session, location, write=True)
        if isinstance(location, RunArtifacts):
            found: Sequence[Any] = await runs.list_artifacts(
                session, run_id=location.run_id, prefix=prefix
            )
            for f in found:
                await runs.delete_artifact(
                    session, run_id=location.run_id, path=f.path, actor=actor
                )
        else:
            found = await model_files.list_model_artifacts(
                session, model_id=location.model_id, prefix=prefix
            )
            for f in found:
                await model_files.delete_model_artifact(
                    session, model_id=location.model_id, path=f.path, actor=actor
                )
    if prefix and not found:
        raise NotFoundError("artifact", "path", prefix)
    return {}


@endpoint("GET", "server-info", operation="mlflow.server_info", api="3.0")
async def server_info(call: Call) -> dict[str, Any]:
    return dict(SERVER_INFO)
