"""The web UI in a real browser: Debian's headless Chromium (driven by Playwright, never
`playwright install`) against a real server with demo data and authentication on.

Fixtures:
- `browser`: the launched Chromium; name resolution fails for every host but 127.0.0.1.
- `open_page(viewport=...)`: a new browser context and page (a Watched) — call it twice for
  two independent browsers. Every request not to 127.0.0.1 is refused and recorded; console
  errors, page errors and failed requests (network failures and HTTP >= 400) are recorded.
- `watched`: one such page at 1280x800.
- `demo_server`: a real `modelgraph serve` (auth on) on a database seeded by `modelgraph demo`,
  with tokens for an ADMIN, a DEPLOYER (may promote), a WRITER and a READER.
- `screenshot(page, name)`: a PNG into test-artifacts/ui/<name>.png (gitignored; CI keeps it).
"""

import asyncio
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from app.auth.roles import Role
from tests.conftest import ADMIN, make_token
from tests.e2e.conftest import ROOT, Server, cli

CHROMIUM = Path("/usr/bin/chromium")
LOCAL = "127.0.0.1"
ARTIFACTS = ROOT / "test-artifacts" / "ui"
DOCS_IMG = ROOT / "docs" / "img"
# The key the UI (and GraphiQL) keep the token under, in sessionStorage.
TOKEN_KEY = "modelgraph.token"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Small enough to seed quickly, large enough for a page of runs per experiment.
DEMO_RUNS = 60


def unavailable(reason: str) -> None:
    # CI installs chromium (.ci/run): there, a browser test that cannot run is a failure.
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the browser tests)")
    pytest.skip(reason)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        unavailable("Debian's chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (the dev extra)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            # Name resolution fails for every host but the loopback address: even a request
            # that escaped the route below could not leave the machine.
            args=[f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {LOCAL}"],
        )
        try:
            yield launched
        finally:
            launched.close()


class Watched:
    """A browser context with one page, every request outside 127.0.0.1 refused, and
    everything that went wrong on it recorded."""

    def __init__(self, browser: Any, viewport: dict[str, int] | None = None) -> None:
        self.context = browser.new_context(viewport=viewport or DESKTOP)
        self.page = self.context.new_page()
        self.elsewhere: list[str] = []
        self.failed: list[str] = []
        self.console: list[str] = []
        self.sockets: list[str] = []
        # What the page sent on its WebSockets, parsed: (socket number, message).
        self.sent: list[tuple[int, Any]] = []
        self.requests: list[str] = []
        self.context.route("**/*", self._route)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))
        self.page.on("requestfailed", lambda r: self.failed.append(f"{r.url} {r.failure}"))
        self.page.on("response", self._response)
        self.page.on("websocket", self._websocket)

    def _route(self, route: Any) -> None:
        url = route.request.url
        self.requests.append(url)
        if url.startswith("data:") or urlsplit(url).hostname == LOCAL:
            route.continue_()
        else:
            self.elsewhere.append(url)
            route.abort()

    def _websocket(self, ws: Any) -> None:
        self.sockets.append(ws.url)
        number = len(self.sockets)
        ws.on("framesent", lambda payload: self.sent.append((number, json.loads(payload))))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.console.append(message.text)

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.status} {response.url}")

    def open(self, base: str, route: str = "#/models", *, token: str | None = None) -> Any:
        """Go to the UI at `route`, signed in with `token` (put in sessionStorage before
        the page's scripts run, as a sign-in earlier in the tab would have) or not."""
        if token is not None:
            self.context.add_init_script(f"window.sessionStorage.setItem({TOKEN_KEY!r}, {token!r})")
        self.page.goto(f"{base}/{route}")
        return self.page

    def assert_clean(self) -> None:
        """Nothing went anywhere but 127.0.0.1, failed, or complained."""
        assert self.elsewhere == [], self.elsewhere
        assert self.failed == [], self.failed
        assert self.console == [], self.console

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Watched]]:
    pages: list[Watched] = []

    def make(viewport: dict[str, int] | None = None) -> Watched:
        pages.append(Watched(browser, viewport))
        return pages[-1]

    yield make
    for page in pages:
        page.close()


@pytest.fixture
def watched(open_page: Callable[..., Watched]) -> Watched:
    return open_page(DESKTOP)


@dataclass
class DemoServer:
    base: str
    ws: str
    port: int
    server: Server
    database_url: str
    tokens: dict[Role, str]

    @property
    def admin(self) -> str:
        return self.tokens[Role.ADMIN]

    @property
    def deployer(self) -> str:
        return self.tokens[Role.DEPLOYER]

    @property
    def writer(self) -> str:
        return self.tokens[Role.WRITER]

    @property
    def reader(self) -> str:
        return self.tokens[Role.READER]


# The token names (the actors the server records) of each role's token.
NAMES = {Role.ADMIN: ADMIN, Role.DEPLOYER: "ui-deployer", Role.WRITER: "ui-writer"}
NAMES[Role.READER] = "ui-reader"


@pytest.fixture
def demo_server(
    server_env: dict[str, str],
    start_server: Callable[..., Server],
    database_url: str,
    admin_secret: str,
) -> DemoServer:
    """`modelgraph demo` on the test's database, then a server on it with auth on."""
    seeded = cli("demo", "--runs", str(DEMO_RUNS), env=server_env)
    assert seeded.returncode == 0, seeded.stderr
    tokens = {Role.ADMIN: admin_secret}
    for role in (Role.DEPLOYER, Role.WRITER, Role.READER):
        tokens[role] = asyncio.run(make_token(database_url, NAMES[role], role))
    server = start_server()
    return DemoServer(server.base, server.ws, server.port, server, database_url, tokens)


@pytest.fixture
def screenshot() -> Callable[..., Path]:
    """screenshot(page, name): the page as test-artifacts/ui/<name>.png; its path. With
    docs=True it is also a picture in docs/img/, made when missing and refreshed when
    MODELGRAPH_DOCS_IMG=1 (a test run should not leave a tracked file changed)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str, *, full_page: bool = False, docs: bool = False) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        picture = DOCS_IMG / f"{name}.png"
        if docs and (not picture.exists() or os.environ.get("MODELGRAPH_DOCS_IMG") == "1"):
            DOCS_IMG.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, picture)
        return path

    return take
