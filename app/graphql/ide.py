"""GraphiQL at /graphql, served entirely from this package: the page, our sign-in script and
the vendored GraphiQL/React builds (static/graphiql/, rebuilt by scripts/vendor-graphiql).
A browser needs no network beyond this server, and no token to load the page."""

import gzip
import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from app.config import Settings

STATIC = Path(__file__).parent / "static"
ASSET_ROUTE = "/static/graphiql/{name}"
# Our own files first; the rest are the vendored builds. Only these names are served.
ASSET_FILES = {
    "ide.css": STATIC / "ide.css",
    "ide.js": STATIC / "ide.js",
    **{
        name: STATIC / "graphiql" / name
        for name in (
            "graphiql.min.css",
            "plugin-explorer.css",
            "react.production.min.js",
            "react-dom.production.min.js",
            "graphiql.min.js",
            "plugin-explorer.umd.js",
        )
    },
}
STYLES = ("graphiql.min.css", "plugin-explorer.css", "ide.css")
SCRIPTS = (
    "react.production.min.js",
    "react-dom.production.min.js",
    "graphiql.min.js",
    "plugin-explorer.umd.js",
    "ide.js",
)
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
# An asset URL carries its digest (?v=), so a cached copy can never be stale.
FOREVER = "public, max-age=31536000, immutable"

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>modelgraph · GraphiQL</title>
<link rel="icon" href="data:,">
{styles}
<script type="application/json" id="modelgraph-ide">{config}</script>
</head>
<body>
<div id="modelgraph-ide-root">Loading GraphiQL…</div>
{scripts}
</body>
</html>
"""


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    digest: str
    content_type: str


@cache
def asset(name: str) -> Asset:
    """Read once, on first use: GraphiQL's 3.5 MB script goes out as ~1 MB gzipped."""
    path = ASSET_FILES[name]
    body = path.read_bytes()
    return Asset(
        body=body,
        gzipped=gzip.compress(body, mtime=0),
        digest=hashlib.sha256(body).hexdigest()[:16],
        content_type=CONTENT_TYPES[path.suffix],
    )


def url(name: str) -> str:
    # Relative to /graphql, so the page also works behind a path prefix.
    return f"static/graphiql/{name}?v={asset(name).digest}"


def auth_mode(settings: Settings) -> str:
    """`none`: no token is needed; `optional`: reads work without one; `required`."""
    if settings.dev_mode:
        return "none"
    return "optional" if settings.anonymous_read else "required"


def page(request: Request) -> HTMLResponse:
    """The GraphiQL page; the queries it sends carry the token, the page needs none."""
    config = json.dumps({"auth": auth_mode(request.app.state.settings)})
    html = PAGE.format(
        # "<" cannot appear in the JSON, so it cannot close the script element early.
        config=config.replace("<", "\\u003c"),
        styles="\n".join(f'<link rel="stylesheet" href="{url(n)}">' for n in STYLES),
        scripts="\n".join(f'<script src="{url(n)}"></script>' for n in SCRIPTS),
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-cache"})


async def serve_asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in ASSET_FILES:
        return PlainTextResponse("Not Found", status_code=404)
    found = asset(name)
    current = request.query_params.get("v") == found.digest
    headers = {
        "Cache-Control": FOREVER if current else "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Vary": "Accept-Encoding",
    }
    body = found.body
    if "gzip" in request.headers.get("accept-encoding", ""):
        body = found.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=found.content_type, headers=headers)
