"""The UI's shell in a real browser: sign-in (and none in --dev mode), a refused token,
signing out, an unknown address, and keyboard use of a dialog."""

from collections.abc import Callable

import pytest

from tests.e2e.conftest import Server, gql
from tests.e2e.ui.conftest import TOKEN_KEY, DemoServer, Watched

pytestmark = pytest.mark.browser


def test_dev_mode_needs_no_sign_in(start_server: Callable[..., Server], watched: Watched) -> None:
    # given a server in --dev mode (authentication off) with no models
    server = start_server("--dev")

    # when the UI opens
    page = watched.open(server.base, "#/models")

    # then there is no sign-in step: the board says who you are and what to do
    page.get_by_test_id("role").get_by_text("ADMIN").wait_for()
    assert page.locator(".who-name").inner_text() == "dev"
    page.get_by_text("No registered models yet").wait_for()
    assert page.get_by_label("API token").count() == 0
    assert page.get_by_role("button", name="Sign out").count() == 0
    watched.assert_clean()


def test_a_refused_token_is_said_so_and_nothing_is_stored(
    demo_server: DemoServer, watched: Watched
) -> None:
    page = watched.open(demo_server.base, "")
    page.get_by_label("API token").fill("mg_not-a-token")
    page.get_by_role("button", name="Sign in").click()

    page.get_by_role("alert").get_by_text("The server refused this token").wait_for()
    assert page.evaluate("() => sessionStorage.length") == 0
    assert watched.elsewhere == []
    # The refusal itself is the only thing the browser logs.
    assert all("401" in message for message in watched.console), watched.console


def test_signing_out_forgets_the_token(demo_server: DemoServer, watched: Watched) -> None:
    page = watched.open(demo_server.base, "#/models", token=demo_server.reader)
    page.get_by_test_id("role").get_by_text("READER").wait_for()
    assert page.evaluate(f"() => sessionStorage.getItem({TOKEN_KEY!r})") == demo_server.reader

    page.get_by_role("button", name="Sign out").click()

    page.get_by_label("API token").wait_for()
    assert page.evaluate(f"() => sessionStorage.getItem({TOKEN_KEY!r})") is None
    watched.assert_clean()


def test_an_unknown_address_says_where_to_go(demo_server: DemoServer, watched: Watched) -> None:
    page = watched.open(demo_server.base, "#/nowhere", token=demo_server.reader)
    page.get_by_text("There is no page at this address").wait_for()
    page.get_by_role("link", name="Go to the models board").click()
    page.locator("[data-model='fraud-detector']").wait_for()
    watched.assert_clean()


def test_a_dialog_is_usable_with_the_keyboard(demo_server: DemoServer, watched: Watched) -> None:
    page = watched.open(demo_server.base, "#/models", token=demo_server.deployer)
    promote = page.locator(
        "[data-model='fraud-detector'] [data-version='3'] [data-action='promote']"
    )
    promote.wait_for()

    # Enter on the focused button opens the dialog with the focus in it
    promote.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    assert page.evaluate("() => document.activeElement.id") == "reason"

    # Tab stays inside the dialog
    for _ in range(6):
        page.keyboard.press("Tab")
        inside = page.evaluate("() => !!document.activeElement.closest('[role=dialog]')")
        assert inside

    # Esc closes it and gives the focus back
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    assert page.evaluate("() => document.activeElement.dataset.action") == "promote"
    watched.assert_clean()


def test_a_token_revoked_while_the_page_is_open_asks_for_another(
    demo_server: DemoServer, watched: Watched
) -> None:
    page = watched.open(demo_server.base, "#/models", token=demo_server.reader)
    page.locator("[data-model='fraud-detector']").wait_for()

    # when an admin revokes the reader's token, and the reader opens another page
    revoked = gql(
        demo_server.base,
        'mutation { revokeApiToken(input: {name: "ui-reader"}) { __typename } }',
    )
    assert revoked["revokeApiToken"]["__typename"] == "RevokeApiTokenSuccess"
    page.get_by_role("link", name="Events").click()

    # then the UI says so and asks for a token, having forgotten the old one
    page.get_by_role("alert").get_by_text("no longer accepts your token").wait_for()
    page.get_by_label("API token").wait_for()
    assert page.evaluate(f"() => sessionStorage.getItem({TOKEN_KEY!r})") is None
    assert watched.elsewhere == []
