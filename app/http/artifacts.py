"""The artifact routes: streamed upload and verified, ranged download over plain HTTP.

A face: authentication and roles through app.auth, every rule in app.artifacts.
Errors are `{"error": {"code", "message", "field"?}}` with the status a client can act on.
"""

import base64
import binascii
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.artifacts.content import Located, get_blob, normalize_path, store_content
from app.artifacts.errors import BlobCorruptError, BlobMissingError, TooLargeError
from app.artifacts.runs import check_run, delete_artifact, get_artifact, log_artifact
from app.artifacts.store import BlobStore
from app.auth.errors import AuthenticationError, PermissionDeniedError
from app.auth.roles import Principal
from app.errors import (
    AlreadyExistsError,
    ConflictError,
    DomainError,
    NotFoundError,
    UnavailableError,
    ValidationError,
)
from app.http import paths  # noqa: F401  (registers the artifact_path convertor)
from app.observability import CutShort, Metrics

log = logging.getLogger("modelgraph.artifacts")

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_STATUS: list[tuple[type[DomainError], int]] = [
    (TooLargeError, 413),
    (ValidationError, 400),
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (AlreadyExistsError, 409),
    (UnavailableError, 503),
    # The store lost or damaged content: not the client's doing, and retrying will not help.
    (BlobMissingError, 500),
    (BlobCorruptError, 500),
]


def error_response(error: DomainError) -> JSONResponse:
    status = next((s for kind, s in _STATUS if isinstance(error, kind)), 400)
    body: dict[str, Any] = {"code": str(error.code), "message": error.message}
    field = getattr(error, "field", None)
    if field is not None:
        body["field"] = field
    limit = getattr(error, "limit", None)
    if limit is not None:
        body["limit"] = limit
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(error, UnavailableError):
        headers = {"Retry-After": str(error.retry_after)}
    return JSONResponse({"error": body}, status, headers=headers)


async def _authorize(request: Request, operation: str) -> Principal:
    principal: Principal = await request.app.state.access.authorize(
        request.headers.get("authorization"), operation
    )
    return principal


def _declared_sha256(request: Request) -> tuple[str | None, str]:
    if (value := request.headers.get("x-content-sha256")) is not None:
        return value, "X-Content-SHA256"
    digest = request.headers.get("digest")
    if digest is not None:
        # RFC 3230: `sha-256=<base64>`; other algorithms are not checked.
        for part in digest.split(","):
            algorithm, _, encoded = part.strip().partition("=")
            if algorithm.lower() == "sha-256":
                return _base64_to_hex(encoded), "Digest"
    return None, "X-Content-SHA256"


def _base64_to_hex(encoded: str) -> str:
    try:
        return base64.b64decode(encoded, validate=True).hex()
    except (ValueError, binascii.Error):
        raise ValidationError("Digest", "sha-256 must be base64") from None


async def upload_run_artifact(request: Request) -> Response:
    try:
        principal = await _authorize(request, "artifacts.upload")
        run_id = request.path_params["run_id"]
        path = normalize_path("path", request.path_params["path"])
        state = request.app.state
        settings = state.settings
        async with state.db.read() as session:
            # Before reading a byte of the body: a wrong run is refused at once.
            await check_run(session, run_id=run_id)
        declared, field = _declared_sha256(request)
        uploaded = await store_content(
            state.db,
            state.blobs,
            request.stream(),
            max_bytes=settings.max_artifact_bytes,
            declared=declared,
            declared_field=field,
        )
        async with state.db.unit_of_work() as session:
            artifact = await log_artifact(
                session,
                state.blobs,
                run_id=run_id,
                path=path,
                uploaded=uploaded,
                actor=principal.actor,
                max_files=settings.max_artifacts_per_run,
            )
    except DomainError as error:
        return error_response(error)
    return JSONResponse(
        {"path": artifact.path, "digest": artifact.digest, "size": artifact.size}, 201
    )


async def upload_blob(request: Request) -> Response:
    """Content referenced by nothing yet, for a model version registered from its digest
    (a CI job that built the model outside any run): gc keeps it for the grace period."""
    try:
        await _authorize(request, "artifacts.upload")
        state = request.app.state
        declared, field = _declared_sha256(request)
        uploaded = await store_content(
            state.db,
            state.blobs,
            request.stream(),
            max_bytes=state.settings.max_artifact_bytes,
            declared=declared,
            declared_field=field,
        )
    except DomainError as error:
        return error_response(error)
    return JSONResponse({"digest": uploaded.digest, "size": uploaded.size}, 201)


async def delete_run_artifact(request: Request) -> Response:
    try:
        principal = await _authorize(request, "artifacts.delete")
        async with request.app.state.db.unit_of_work() as session:
            artifact = await delete_artifact(
                session,
                run_id=request.path_params["run_id"],
                path=request.path_params["path"],
                actor=principal.actor,
            )
    except DomainError as error:
        return error_response(error)
    return JSONResponse({"path": artifact.path, "digest": artifact.digest, "deleted": True})


async def download_run_artifact(request: Request) -> Response:
    try:
        await _authorize(request, "artifacts.download")
        async with request.app.state.db.read() as session:
            found = await get_artifact(
                session, run_id=request.path_params["run_id"], path=request.path_params["path"]
            )
    except DomainError as error:
        return error_response(error)
    return await _send(request, found)


async def download_blob(request: Request) -> Response:
    try:
        await _authorize(request, "artifacts.download")
        async with request.app.state.db.read() as session:
            found = await get_blob(session, digest=request.path_params["digest"])
    except DomainError as error:
        return error_response(error)
    return await _send(request, found)


def _range(header: str | None, size: int) -> tuple[int, int] | Response | None:
    """(start, end) of a single `bytes=` range, None for the whole, or a 416 response."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    unsatisfiable = Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    if match is None or match.group(1) == match.group(2) == "":
        # Multiple ranges and other units are not served: the whole file is (RFC 9110).
        return None
    first, last = match.group(1), match.group(2)
    if first == "":
        length = int(last)
        if length == 0 or size == 0:
            return unsatisfiable
        return max(size - length, 0), size
    start = int(first)
    if start >= size:
        return unsatisfiable
    end = size if last == "" else min(int(last) + 1, size)
    if end <= start:
        return unsatisfiable
    return start, end


async def _send(request: Request, found: Located) -> Response:
    etag = f'"{found.digest}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "X-Content-SHA256": found.digest,
        "Cache-Control": "private, immutable",
    }
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and (
        if_none_match.strip() == "*"
        or etag in [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    ):
        return Response(status_code=304, headers=headers)
    wanted = _range(request.headers.get("range"), found.size)
    if isinstance(wanted, Response):
        return wanted
    start, end = wanted if wanted is not None else (0, found.size)
    status = 200
    if wanted is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{found.size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD" or start == end:
        return Response(status_code=status, headers=headers)
    blobs: BlobStore = request.app.state.blobs
    parts = blobs.open(found.digest, size=found.size, chunks=found.chunks, start=start, end=end)
    try:
        body = await verified_body(parts, path=request.url.path, metrics=request.app.state.metrics)
    except DomainError as error:
        return error_response(error)
    return StreamingResponse(
        body, status_code=status, headers=headers, media_type="application/octet-stream"
    )


async def verified_body(
    parts: AsyncIterator[memoryview], *, path: str, metrics: Metrics
) -> AsyncIterator[memoryview]:
    """A download's body from the store's checked chunks. The first chunk is read and
    checked now, before the status goes out, so a missing or corrupt blob is the caller's
    error answer (BlobMissingError or BlobCorruptError, counted and logged here). A later
    bad chunk raises mid-body: the connection is cut short of its Content-Length, never
    ended cleanly on wrong bytes."""
    try:
        first = await anext(parts)
    except (BlobMissingError, BlobCorruptError) as error:
        metrics.store_integrity_failures.labels(error.code.lower()).inc()
        log.error("download of %s refused: %s", path, error.message)
        raise
    return _then(first, parts, path, metrics)


async def _then(
    first: memoryview, rest: AsyncIterator[memoryview], path: str, metrics: Metrics
) -> AsyncIterator[memoryview]:
    yield first
    try:
        async for part in rest:
            yield part
    except (BlobMissingError, BlobCorruptError) as error:
        metrics.store_integrity_failures.labels(error.code.lower()).inc()
        log.error("download of %s cut short: %s", path, error.message)
        raise CutShort from error


ROUTES = [
    Route("/artifacts/uploads", upload_blob, methods=["PUT"]),
    Route("/artifacts/runs/{run_id}/{path:artifact_path}", upload_run_artifact, methods=["PUT"]),
    Route(
        "/artifacts/runs/{run_id}/{path:artifact_path}",
        download_run_artifact,
        methods=["GET", "HEAD"],
    ),
    Route("/artifacts/runs/{run_id}/{path:artifact_path}", delete_run_artifact, methods=["DELETE"]),
    Route("/artifacts/blobs/{digest}", download_blob, methods=["GET", "HEAD"]),
]
