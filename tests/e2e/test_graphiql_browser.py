"""GraphiQL in a real browser (Debian's headless Chromium, driven by Playwright) against a
real server with authentication on, with no network beyond 127.0.0.1: the page renders,
one token step loads the schema, a query and a subscription run."""

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import ADMIN
from tests.e2e.conftest import Auth, Server, gql

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
LOCAL = "127.0.0.1"
REGISTER = 'mutation { registerModelVersion(input: {model: "m"}) { __typename } }'
FIRST_EVENT = "{ events(first: 1) { nodes { cursor } } }"


def unavailable(reason: str) -> None:
    # CI installs chromium (.ci/run): there, a browser test that cannot run is a failure.
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the browser test)")
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
    """A page with every request outside 127.0.0.1 refused, and everything that went wrong
    on it recorded."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page = self.context.new_page()
        self.elsewhere: list[str] = []
        self.failed: list[str] = []
        self.console: list[str] = []
        self.sockets: list[str] = []
        self.context.route("**/*", self._route)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))
        self.page.on("requestfailed", lambda r: self.failed.append(f"{r.url} {r.failure}"))
        self.page.on("response", self._response)
        self.page.on("websocket", lambda ws: self.sockets.append(ws.url))

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith("data:") or urlsplit(url).hostname == LOCAL:
            route.continue_()
        else:
            self.elsewhere.append(url)
            route.abort()

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.console.append(message.text)

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.status} {response.url}")

    def screenshot(self, path: Path) -> None:
        """Into the test's tmp dir, and MODELGRAPH_TEST_ARTIFACTS if set, to look at."""
        self.page.screenshot(path=str(path))
        if artifacts := os.environ.get("MODELGRAPH_TEST_ARTIFACTS"):
            shutil.copy(path, Path(artifacts) / path.name)

    def run(self, query: str, *, shows: str) -> str:
        """Put `query` in the editor, run it, and return the result pane once it `shows`."""
        editor = "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror"
        self.page.evaluate(f"q => {editor}.setValue(q)", query)
        # GraphiQL parses the editor's text a moment later; run only what it has parsed (a
        # subscription goes over the WebSocket only once it is known to be one).
        self.page.wait_for_function(f"q => {editor}.documentAST?.loc?.source.body === q", arg=query)
        self.page.locator(".graphiql-execute-button").click()
        self.page.wait_for_function(
            "s => document.querySelector('.result-window')?.innerText.includes(s)", arg=shows
        )
        return self.page.locator(".result-window").inner_text()


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    page = Watched(browser)
    yield page
    page.context.close()


def test_graphiql_signs_in_with_a_token_loads_the_schema_and_runs_a_query(
    start_server: Callable[..., Server], watched: Watched, tmp_path: Path
) -> None:
    # given a server with authentication on (the default) and an event to replay
    server = start_server()
    gql(server.base, REGISTER)
    cursor = gql(server.base, FIRST_EVENT)["events"]["nodes"][0]["cursor"]
    page = watched.page

    # when a browser opens GraphiQL (the server's root is the web UI, tests/e2e/ui/)
    page.goto(f"{server.base}/graphql")

    # then GraphiQL's page asks for a token before anything else
    page.get_by_text("This server needs an API token").wait_for()
    token = page.get_by_label("API token")
    watched.screenshot(tmp_path / "sign-in.png")

    # when the token is entered: one step
    token.fill(Auth.token or "")
    page.get_by_role("button", name="Sign in").click()

    # then GraphiQL opens, the page says who is signed in, and the docs show Query's fields
    page.locator(".graphiql-container").wait_for()
    page.get_by_text(f"Signed in as {ADMIN} (ADMIN)").wait_for()
    page.get_by_label("Show Documentation Explorer").click()
    docs = page.locator(".graphiql-doc-explorer")
    docs.get_by_text("Query", exact=True).click()
    docs.get_by_text("viewer", exact=True).wait_for()
    docs.get_by_text("bestRun", exact=True).wait_for()

    # and a query runs with the token
    answer = watched.run("{ viewer { name role } }", shows='"viewer"')
    assert f'"name": "{ADMIN}"' in answer, answer
    assert '"role": "ADMIN"' in answer, answer

    # and a subscription too: the token went in the WebSocket's connection_init
    answer = watched.run(
        f'subscription {{ lifecycleEvents(after: "{cursor}") {{ type actor }} }}',
        shows='"lifecycleEvents"',
    )
    assert '"lifecycleEvents"' in answer, answer
    assert f'"actor": "{ADMIN}"' in answer, answer
    assert watched.sockets == [f"ws://{LOCAL}:{server.port}/graphql"]
    watched.screenshot(tmp_path / "graphiql.png")

    # and a reload keeps the session signed in (sessionStorage), without asking again
    page.reload()
    page.get_by_text(f"Signed in as {ADMIN} (ADMIN)").wait_for()
    assert page.get_by_label("API token").count() == 0

    # and nothing went anywhere but 127.0.0.1, failed, or complained
    assert watched.elsewhere == []
    assert watched.failed == []
    assert watched.console == []


def test_a_refused_token_is_said_so_and_nothing_is_stored(
    start_server: Callable[..., Server], watched: Watched
) -> None:
    server = start_server()
    page = watched.page
    page.goto(f"{server.base}/graphql")

    page.get_by_label("API token").fill("mg_not-a-token")
    page.get_by_role("button", name="Sign in").click()

    page.get_by_role("alert").get_by_text("refused").wait_for()
    assert page.evaluate("() => sessionStorage.length") == 0
    assert watched.elsewhere == []
    assert watched.console == [] or all("401" in m for m in watched.console), watched.console
