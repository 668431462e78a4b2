"""Artifact bytes over HTTP: streamed uploads with their declared SHA-256, and streamed,
verified, resumable downloads to files. Memory stays constant whatever the file size.

An upload reads its file twice: once to hash it, once to send it with the hash declared
(X-Content-SHA256). The server refuses bytes that hash otherwise, so a file changed while
it was sent, or a transfer mangled on its way, is never stored under a path that claims
to be the file. On a local disk the first pass reads at disk speed and leaves the file
in the page cache for the second.
"""

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self
from urllib.parse import quote

import httpx

from app.client.errors import ClientError, DigestMismatch, Unreachable
from app.client.http import auth_headers

READ_SIZE = 1024 * 1024
# A transfer's reads and writes are timed one by one, so a long transfer never times out
# while bytes flow; the answer to an upload waits for the server to store it.
TIMEOUT = httpx.Timeout(60.0, read=600.0)


def base_url(url: str) -> str:
    """The server's base URL, given it or its GraphQL endpoint."""
    return url.rstrip("/").removesuffix("/graphql")


def sha256_file(path: Path) -> tuple[str, int]:
    """The SHA-256 (hex) and size of a file, read in constant memory."""
    hasher = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while block := f.read(READ_SIZE):
            hasher.update(block)
            size += len(block)
    return hasher.hexdigest(), size


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    while block := f.read(READ_SIZE):
        yield block


def refusal(response: httpx.Response) -> ClientError:
    """A ClientError from an artifact route's `{"error": {"code", "message", ...}}` answer."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        text = response.text[:200] or response.reason_phrase
        return ClientError(f"HTTP {response.status_code}: {text}", status=response.status_code)
    message = str(error.get("message", "the server refused"))
    if field := error.get("field"):
        message = f"{field}: {message}"
    return ClientError(
        message, errors=[{"message": message, "extensions": error}], status=response.status_code
    )


@dataclass(frozen=True)
class Stored:
    """What the server stored: the digest and size (and the run path, for a run's file)."""

    digest: str
    size: int
    path: str | None = None


@dataclass(frozen=True)
class Downloaded:
    path: Path
    digest: str
    size: int
    resumed_from: int = 0


class Artifacts:
    """Artifact transfers with one server: `upload_run_file`, `upload_blob`,
    `download_run_file`, `download_blob`. Failures are ClientError (Unreachable when
    nothing answered, DigestMismatch when the bytes received are not the ones named)."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: httpx.Timeout = TIMEOUT,
        trust_env: bool = True,
    ) -> None:
        self.base_url = base_url(url)
        self.http = httpx.Client(
            base_url=self.base_url,
            headers=auth_headers(token),
            timeout=timeout,
            trust_env=trust_env,
        )

    @staticmethod
    def run_path(run_id: str, path: str) -> str:
        return f"/artifacts/runs/{quote(run_id, safe='')}/{quote(path, safe='/')}"

    @staticmethod
    def blob_path(digest: str) -> str:
        return f"/artifacts/blobs/{quote(digest, safe='')}"

    def _put(self, target: str, local: Path, *, declare: bool) -> dict[str, Any]:
        headers = {"Content-Type": "application/octet-stream"}
        if declare:
            headers["X-Content-SHA256"] = sha256_file(local)[0]
        try:
            with local.open("rb") as f:
                headers["Content-Length"] = str(os.fstat(f.fileno()).st_size)
                response = self.http.put(target, content=_chunks(f), headers=headers)
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach {self.base_url}: {exc}") from exc
        if response.status_code != 201:
            raise refusal(response)
        answer: dict[str, Any] = response.json()
        return answer

    def upload_run_file(
        self, run_id: str, path: str, local: Path, *, declare: bool = True
    ) -> Stored:
        """Store `local` as the run's artifact at `path` (replacing what was there)."""
        answer = self._put(self.run_path(run_id, path), local, declare=declare)
        return Stored(digest=answer["digest"], size=answer["size"], path=answer["path"])

    def upload_blob(self, local: Path, *, declare: bool = True) -> Stored:
        """Store `local` as content referenced by nothing yet (PUT /artifacts/uploads): its
        digest is what registerModelVersion's `files` name."""
        answer = self._put("/artifacts/uploads", local, declare=declare)
        return Stored(digest=answer["digest"], size=answer["size"])

    def download_run_file(
        self, run_id: str, path: str, dest: Path, *, expected: str | None = None
    ) -> Downloaded:
        return self.download(self.run_path(run_id, path), dest, expected=expected)

    def download_blob(self, digest: str, dest: Path) -> Downloaded:
        return self.download(self.blob_path(digest), dest, expected=digest)

    def download(
        self, target: str, dest: Path, *, expected: str | None = None, retries: int = 2
    ) -> Downloaded:
        """`fetch`, resumed up to `retries` times when the transfer is cut short. The server
        cuts a download at a chunk that fails its check; the resumed request then starts
        at that chunk and gets the typed error (BLOB_CORRUPT) instead of a broken stream."""
        for _ in range(retries):
            try:
                return self.fetch(target, dest, expected=expected)
            except Unreachable:
                if expected is None:
                    raise
        return self.fetch(target, dest, expected=expected)

    def fetch(self, target: str, dest: Path, *, expected: str | None = None) -> Downloaded:
        """Stream `target` into `dest`, hashing as it goes; `dest` appears (by rename) only
        once the bytes hash to `expected` (or, without it, to the server's ETag). The bytes
        land in `<dest>.part` first; a later call resumes from it with a Range request
        bound to the same content (If-Range), so an interrupted transfer is not repeated."""
        part = dest.with_name(f"{dest.name}.part")
        have = part.stat().st_size if expected and part.exists() else 0
        headers = {}
        if have:
            headers = {"Range": f"bytes={have}-", "If-Range": f'"{expected}"'}
        try:
            with self.http.stream("GET", target, headers=headers) as response:
                if response.status_code not in (200, 206):
                    response.read()
                    raise refusal(response)
                named = response.headers.get("etag", "").strip('"') or None
                want = expected or named
                if want is None:
                    raise ClientError("the server named no digest for the content (ETag)")
                if named is not None and named != want:
                    raise DigestMismatch(target, expected=want, actual=named)
                hasher = hashlib.sha256()
                resumed = have if response.status_code == 206 else 0
                with part.open("r+b" if resumed else "wb") as out:
                    if resumed:
                        # The kept prefix is hashed again: a damaged .part cannot pass.
                        while block := out.read(READ_SIZE):
                            hasher.update(block)
                        out.truncate(resumed)
                    for block in response.iter_bytes(READ_SIZE):
                        hasher.update(block)
                        out.write(block)
                    out.flush()
                    os.fsync(out.fileno())
                    size = out.tell()
        except httpx.TransportError as exc:
            # Kept: the next call resumes from what arrived.
            raise Unreachable(f"the download of {target} was cut short: {exc}") from exc
        actual = hasher.hexdigest()
        if actual != want:
            part.unlink(missing_ok=True)
            raise DigestMismatch(target, expected=want, actual=actual)
        os.replace(part, dest)
        return Downloaded(path=dest, digest=actual, size=size, resumed_from=resumed)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
