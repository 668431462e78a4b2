"""The web UI over HTTP, in process: `/` serves the page without a token and tells it the
server's auth mode; `/ui/...` serves the files under app/ui/static and nothing else, with
the right content types, ETags, gzip; every module the page imports is there; and the whole
UI stays within its size budget. The browser tests (tests/e2e/ui/) prove it works."""

import gzip
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from app.ui import routes
from tests.conftest import asgi_client

HTML = {"Accept": "text/html"}
# Total gzipped size of everything under app/ui/static (GraphiQL is elsewhere).
BUDGET_BYTES = 400 * 1024
# A JS module's static, dynamic and route-table imports: "./x.js", "../x.js".
IMPORT = re.compile(r"""["'](\.{1,2}/[^"'\s]+\.js)["']""")


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.meta: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href"):
            if found.get(name):
                self.urls.append(found[name] or "")
        if tag == "meta" and found.get("name"):
            self.meta[found["name"] or ""] = found.get("content") or ""


def links(html: str) -> Links:
    parser = Links()
    parser.feed(html)
    return parser


async def test_root_serves_the_page_without_a_token(app):
    async with asgi_client(app) as anonymous:
        response = await anonymous.get("/", headers=HTML)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["etag"]
    # Only this server's scripts, styles and API; never framed.
    policy = response.headers["content-security-policy"]
    for directive in ("script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"):
        assert directive in policy
    page = links(response.text)
    assert "/ui/js/main.js" in page.urls
    assert "/ui/css/app.css" in page.urls
    # The server needs a token (auth on by default): the page asks for one.
    assert page.meta["modelgraph-auth"] == "required"


async def test_the_page_is_told_the_auth_mode(app_with):
    expected = {(): "required", (("anonymous_read", True),): "optional"}
    expected[(("dev_mode", True),)] = "none"
    for overrides, auth in expected.items():
        async with app_with(None, **dict(overrides)) as gql:
            response = await gql.client.get("/")
        assert links(response.text).meta["modelgraph-auth"] == auth, overrides


async def test_root_serves_the_ui_even_without_graphiql(app_with):
    async with app_with(None, graphiql=False) as gql:
        response = await gql.client.get("/", headers=HTML)
    assert response.status_code == 200
    assert "/ui/js/main.js" in response.text


async def test_every_url_the_page_loads_is_served_from_this_server(app):
    async with asgi_client(app) as anonymous:
        page = links((await anonymous.get("/")).text)
        local = [u for u in page.urls if not u.startswith("data:")]
        assert local, page.urls
        for url in local:
            # No CDN, no other host: everything comes from the package.
            assert url.startswith("/"), url
            assert not url.startswith("//"), url
            if url.startswith("/ui/"):
                response = await anonymous.get(url)
                assert response.status_code == 200, url


def test_every_module_a_module_imports_is_in_the_package():
    files = routes.assets()
    for name in files:
        if not name.endswith(".js") or name.startswith("vendor/"):
            continue
        source = (routes.STATIC / name).read_text(encoding="utf-8")
        for target in IMPORT.findall(source):
            resolved = (Path("/") / name).parent.joinpath(target).resolve().relative_to("/")
            assert resolved.as_posix() in files, f"{name} imports {target}: not in app/ui/static"


async def test_files_are_served_with_their_content_types(app):
    expected = {
        "/ui/js/main.js": "text/javascript; charset=utf-8",
        "/ui/js/views/models.js": "text/javascript; charset=utf-8",
        "/ui/css/app.css": "text/css; charset=utf-8",
        "/ui/index.html": "text/html; charset=utf-8",
    }
    async with asgi_client(app) as anonymous:
        for url, content_type in expected.items():
            response = await anonymous.get(url)
            assert response.status_code == 200, url
            assert response.headers["content-type"] == content_type, url
            assert response.headers["cache-control"] == "no-cache", url
            assert response.headers["x-content-type-options"] == "nosniff", url
        body = (
            await anonymous.get("/ui/js/main.js", headers={"Accept-Encoding": "identity"})
        ).content
    assert body == (routes.STATIC / "js" / "main.js").read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/ui/nope.js",
        "/ui/",
        "/ui/js",
        "/ui/js/",
        "/ui/../main.py",
        "/ui/%2E%2E/routes.py",
        "/ui/..%2Froutes.py",
        "/ui/js/..%2F..%2Froutes.py",
        "/ui/js/%2e%2e/%2e%2e/__init__.py",
        "/ui//etc/passwd",
        "/ui/js/main.js.map",
        "/ui/JS/MAIN.JS",
        "/ui/js/main.js%00.css",
    ],
)
async def test_only_the_whitelisted_files_are_served(app, path):
    async with asgi_client(app) as anonymous:
        response = await anonymous.get(path)
    assert response.status_code == 404, path
    assert "import" not in response.text


def test_the_whitelist_is_exactly_the_static_folder():
    on_disk = {
        p.relative_to(routes.STATIC).as_posix()
        for p in routes.STATIC.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(routes.STATIC).parts)
    }
    assert set(routes.assets()) == on_disk
    for name in routes.assets():
        assert ".." not in name.split("/")


async def test_gzip_when_the_client_accepts_it(app):
    async with asgi_client(app) as anonymous:
        compressed = await anonymous.get("/ui/js/api.js", headers={"Accept-Encoding": "gzip"})
        plain = await anonymous.get("/ui/js/api.js", headers={"Accept-Encoding": "identity"})
    assert compressed.headers["content-encoding"] == "gzip"
    assert compressed.headers["vary"] == "Accept-Encoding"
    assert "content-encoding" not in plain.headers
    source = (routes.STATIC / "js" / "api.js").read_bytes()
    assert compressed.content == plain.content == source  # httpx decodes gzip
    assert int(compressed.headers["content-length"]) < len(source)
    assert gzip.decompress(routes.assets()["js/api.js"].gzipped or b"") == source


async def test_an_unchanged_file_revalidates_with_a_304(app):
    async with asgi_client(app) as anonymous:
        first = await anonymous.get("/ui/js/dom.js")
        again = await anonymous.get(
            "/ui/js/dom.js", headers={"If-None-Match": first.headers["etag"]}
        )
        other = await anonymous.get("/ui/js/dom.js", headers={"If-None-Match": '"elsewhere"'})
        page = await anonymous.get("/")
        page_again = await anonymous.get("/", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    assert other.status_code == 200
    assert page_again.status_code == 304


async def test_head_answers_without_a_body(app):
    async with asgi_client(app) as anonymous:
        response = await anonymous.head("/ui/css/app.css", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.content == b""
    assert int(response.headers["content-length"]) == len(routes.assets()["css/app.css"].body)


def test_the_ui_fits_its_size_budget():
    """Everything the UI ships (our code, styles and vendored libraries), gzipped as the
    server sends it: at most 400 KB."""
    total = sum(
        len(a.gzipped if a.gzipped is not None else a.body) for a in routes.assets().values()
    )
    assert total <= BUDGET_BYTES, f"{total} bytes gzipped > {BUDGET_BYTES}"


def test_what_the_ui_hides_by_role_matches_the_servers_table():
    """api.js's `can()` hides what a role may not do; its table must say what the server's
    does (app/auth/roles.py), or the UI would offer moves the server refuses."""
    from app.auth.roles import OPERATION_ROLES

    source = (routes.STATIC / "js" / "api.js").read_text(encoding="utf-8")
    table = re.search(r"const NEEDS = \{(.*?)\};", source, re.S)
    assert table is not None
    needs = dict(re.findall(r"(\w+): \"(\w+)\"", table.group(1)))
    assert needs
    for operation, role in needs.items():
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()
        assert OPERATION_ROLES[snake].value == role, operation
