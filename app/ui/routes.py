"""`/` serves the UI's page; `/ui/{path}` serves the files under static/ and nothing else.

The set of files is read once, at first use, by walking static/: a name that is not one of
them is a 404 (no path traversal, no directory listing). ES module imports cannot carry a
digest in their URL, so every answer is `Cache-Control: no-cache` with an ETag: a browser
revalidates and gets a 304 while nothing changed. Text files are gzipped once, up front."""

import gzip
import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from app.graphql.ide import auth_mode

STATIC = Path(__file__).parent / "static"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".woff2": "font/woff2",
}
# Already compressed: gzip would only cost CPU.
COMPRESSED = {".png", ".woff2"}
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Vary": "Accept-Encoding"}
# The page loads only this server's scripts and styles and talks only to it; it cannot be
# framed (a promote button under someone else's page would be clickjacking).
PAGE_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    etag: str
    content_type: str


def _content_type(path: Path) -> str | None:
    # Vendored libraries' licences (LICENSE, no suffix) are served as text beside them.
    return "text/plain; charset=utf-8" if path.name == "LICENSE" else CONTENT_TYPES.get(path.suffix)


def _load(path: Path, content_type: str) -> Asset:
    body = path.read_bytes()
    return Asset(
        body=body,
        gzipped=None if path.suffix in COMPRESSED else gzip.compress(body, 9, mtime=0),
        etag='"' + hashlib.sha256(body).hexdigest()[:20] + '"',
        content_type=content_type,
    )


@cache
def assets() -> dict[str, Asset]:
    """Every servable file, by its path relative to static/ ("js/main.js"). Files with a
    suffix we have no content type for, and dotfiles, are not served."""
    found: dict[str, Asset] = {}
    for path in sorted(STATIC.rglob("*")):
        relative = path.relative_to(STATIC)
        content_type = _content_type(path)
        if not path.is_file() or content_type is None:
            continue
        if any(part.startswith(".") for part in relative.parts):
            continue
        found[relative.as_posix()] = _load(path, content_type)
    return found


def _answer(request: Request, found: Asset, extra: dict[str, str] | None = None) -> Response:
    headers = {**SECURITY_HEADERS, **(extra or {}), "ETag": found.etag, "Cache-Control": "no-cache"}
    if found.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    body = found.body
    if found.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        body = found.gzipped
        headers["Content-Encoding"] = "gzip"
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(body))
        return Response(b"", media_type=found.content_type, headers=headers)
    return Response(body, media_type=found.content_type, headers=headers)


AUTH_META = b'<meta name="modelgraph-auth" content="required">'


@cache
def page(auth: str) -> Asset:
    """index.html telling the page what this server asks of a browser (none: --dev;
    optional: anonymous reads; required), so it shows the sign-in form only when needed."""
    template = assets()["index.html"].body
    body = template.replace(AUTH_META, AUTH_META.replace(b"required", auth.encode()))
    return Asset(
        body=body,
        gzipped=gzip.compress(body, 9, mtime=0),
        etag='"' + hashlib.sha256(body).hexdigest()[:20] + '"',
        content_type=CONTENT_TYPES[".html"],
    )


async def index(request: Request) -> Response:
    """The UI's page; it needs no token (the API calls it makes do)."""
    found = page(auth_mode(request.app.state.settings))
    return _answer(request, found, {"Content-Security-Policy": PAGE_POLICY})


async def static(request: Request) -> Response:
    found = assets().get(request.path_params["path"])
    if found is None:
        return PlainTextResponse("Not Found", status_code=404, headers=SECURITY_HEADERS)
    return _answer(request, found)


ROUTES = [
    Route("/", index, methods=["GET", "HEAD"]),
    Route("/ui/{path:path}", static, methods=["GET", "HEAD"]),
]
