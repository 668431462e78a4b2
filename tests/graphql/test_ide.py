"""The GraphiQL page over HTTP: served without a token, from the package only (no CDN),
with assets cached for good (`/` is the web UI: tests/ui/). The browser test
(tests/e2e/test_graphiql_browser.py) proves it renders and signs in."""

import json
import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx

from tests.conftest import asgi_client

HTML = {"Accept": "text/html,application/xhtml+xml"}


class Links(HTMLParser):
    """Every URL the page makes the browser load, and the page's JSON configuration."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.config: str | None = None
        self._in_config = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href"):
            if found.get(name):
                self.urls.append(found[name] or "")
        self._in_config = tag == "script" and found.get("id") == "modelgraph-ide"

    def handle_data(self, data: str) -> None:
        if self._in_config:
            self.config = (self.config or "") + data

    def handle_endtag(self, tag: str) -> None:
        self._in_config = False


async def page(client: httpx.AsyncClient) -> Links:
    response = await client.get("/graphql", headers=HTML)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    links = Links()
    links.feed(response.text)
    return links


async def test_the_page_and_its_assets_come_from_the_server_without_a_token(app):
    async with asgi_client(app) as anonymous:
        # when a browser with no token opens /graphql
        links = await page(anonymous)

        # then everything it loads is on this server (data: URLs are inline), nothing else
        assert links.urls, "the page loads no assets"
        remote = [u for u in links.urls if urlsplit(u).scheme not in ("", "data")]
        assert remote == []
        assert not any(u.startswith("//") for u in links.urls)
        local = [urljoin("/graphql", u) for u in links.urls if not u.startswith("data:")]
        assert {u.rsplit("?", 1)[0].rsplit(".", 1)[-1] for u in local} == {"js", "css"}

        # and each asset is served with its content type, cached for good (its URL carries
        # its digest, so a new version is a new URL)
        for url in local:
            response = await anonymous.get(url)
            assert response.status_code == 200, url
            kind = "text/javascript" if url.split("?")[0].endswith(".js") else "text/css"
            assert response.headers["content-type"] == f"{kind}; charset=utf-8", url
            assert "immutable" in response.headers["cache-control"], url
            assert response.headers["x-content-type-options"] == "nosniff"
            assert "sourceMappingURL" not in response.text, url
            assert not re.search(r"https?://(unpkg|cdn|fonts\.)", response.text), url


async def test_the_graphql_endpoint_still_needs_a_token(app):
    async with asgi_client(app) as anonymous:
        response = await anonymous.post("/graphql", json={"query": "{ viewer { name } }"})
    assert response.status_code == 401


async def test_only_the_vendored_files_are_served(app):
    async with asgi_client(app) as anonymous:
        for path in (
            "/static/graphiql/nope.js",
            "/static/graphiql/..%2F..%2Fmain.py",
            "/static/graphiql/%2E%2E/ide.py",
            "/static/graphiql/LICENSE.graphiql.txt",
        ):
            response = await anonymous.get(path)
            assert response.status_code == 404, path


async def test_the_page_asks_for_a_token_only_when_the_server_needs_one(app_with):
    expected = {(): "required", (("anonymous_read", True),): "optional"}
    expected[(("dev_mode", True),)] = "none"
    for overrides, auth in expected.items():
        async with app_with(None, **dict(overrides)) as gql:
            links = await page(gql.client)
        assert links.config is not None
        assert json.loads(links.config)["auth"] == auth, overrides
