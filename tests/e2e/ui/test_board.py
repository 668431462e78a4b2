"""The models board in a real browser (Debian's headless Chromium) against a real server
seeded by `modelgraph demo`, with authentication on and no network beyond 127.0.0.1.

Demo data: three models (fraud-detector, churn-model, demand-forecaster), each with v1
ARCHIVED, v2 STAGING, v3 DEVELOPMENT and v4 PRODUCTION (alias champion)."""

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.auth.roles import Role
from tests.conftest import ADMIN
from tests.e2e.conftest import gql
from tests.e2e.ui.conftest import DESKTOP, NAMES, PHONE, DemoServer, Watched

pytestmark = pytest.mark.browser

STAGES = ("DEVELOPMENT", "STAGING", "PRODUCTION", "ARCHIVED")
SEEDED = {"DEVELOPMENT": 3, "STAGING": 2, "PRODUCTION": 4, "ARCHIVED": 1}
MODELS = ("fraud-detector", "churn-model", "demand-forecaster")
DEPLOYER = NAMES[Role.DEPLOYER]


def card(page: Any, model: str, stage: str, version: int) -> Any:
    return page.locator(f"[data-model='{model}'] [data-stage='{stage}'] [data-version='{version}']")


def versions_in(page: Any, model: str, stage: str) -> list[int]:
    cards = page.locator(f"[data-model='{model}'] [data-stage='{stage}'] [data-version]")
    return sorted(int(v) for v in cards.evaluate_all("cs => cs.map(c => c.dataset.version)"))


def stage_of(server: DemoServer, model: str, version: int) -> str:
    query = "query($m: String!, $v: Int!) { modelVersion(model: $m, version: $v) { stage } }"
    return str(gql(server.base, query, m=model, v=version)["modelVersion"]["stage"])


def policy_and_checks(server: DemoServer) -> None:
    """A PRODUCTION policy on churn-model and validations on its versions, so the board has
    gates to show."""
    gql(
        server.base,
        """mutation { setPromotionPolicy(input: {model: "churn-model", stage: PRODUCTION,
          requiredChecks: ["integration-tests", "bias-audit"],
          metricRules: [{metric: "f1", op: GTE, value: 0.5}]}) { __typename } }""",
    )
    for version, check, status in (
        (2, "integration-tests", "PASSED"),
        (2, "bias-audit", "FAILED"),
        (4, "integration-tests", "PASSED"),
        (4, "bias-audit", "PASSED"),
    ):
        gql(
            server.base,
            """mutation($v: Int!, $c: String!, $s: ValidationStatus!) { recordValidation(input:
              {model: "churn-model", version: $v, check: $c, status: $s}) { __typename } }""",
            v=version,
            c=check,
            s=status,
        )


def signed_in_board(watched: Watched, server: DemoServer, token: str) -> Any:
    page = watched.open(server.base, "#/models", token=token)
    for model in MODELS:
        card(page, model, "PRODUCTION", 4).wait_for()
    page.locator(".live[data-status='live']").wait_for()
    return page


def test_signing_in_shows_the_board_with_the_seeded_stages(
    demo_server: DemoServer, watched: Watched, screenshot: Callable[..., Any]
) -> None:
    # given the demo's registry with a policy and validations on churn-model
    policy_and_checks(demo_server)
    page = watched.page

    # when a browser opens the UI: a token is asked for first
    page.goto(f"{demo_server.base}/")
    page.get_by_label("API token").wait_for()
    screenshot(page, "sign-in")
    page.get_by_label("API token").fill(demo_server.deployer)
    page.get_by_role("button", name="Sign in").click()

    # then it says who is signed in, with the role
    page.get_by_test_id("role").get_by_text("DEPLOYER").wait_for()
    assert page.locator(".who-name").inner_text() == DEPLOYER

    # and every model shows one version in every stage, where the demo put it
    for model in MODELS:
        card(page, model, "PRODUCTION", 4).wait_for()
        for stage, version in SEEDED.items():
            assert versions_in(page, model, stage) == [version], (model, stage)
    champion = card(page, "fraud-detector", "PRODUCTION", 4)
    assert "@champion" in champion.inner_text()

    # and churn-model's policy, validations and gates are on its cards
    churn = page.locator("[data-model='churn-model']")
    assert "PRODUCTION policy" in churn.locator(".policy").inner_text()
    staging = card(page, "churn-model", "STAGING", 2)
    assert "bias-audit ✗" in staging.locator(".checks").inner_text()
    assert "not ready for PRODUCTION" in staging.locator(".gate").inner_text()
    assert "ready for STAGING" in card(page, "churn-model", "DEVELOPMENT", 3).inner_text()
    page.locator(".live[data-status='live']").wait_for()
    screenshot(page, "board-desktop", docs=True)  # the README's picture of the board

    # and nothing went anywhere but 127.0.0.1, failed, or complained
    assert page.viewport_size == DESKTOP
    watched.assert_clean()


def test_promoting_moves_the_version_and_a_second_browser_sees_it_live(
    demo_server: DemoServer, open_page: Callable[..., Watched], screenshot: Callable[..., Any]
) -> None:
    # given two browsers on the board: a deployer's and a reader's
    deployer = open_page()
    reader = open_page()
    page = signed_in_board(deployer, demo_server, demo_server.deployer)
    other = signed_in_board(reader, demo_server, demo_server.reader)
    other.evaluate("() => { window.notReloaded = true; }")

    # when the deployer promotes fraud-detector v2 (STAGING) to PRODUCTION, with a reason
    card(page, "fraud-detector", "STAGING", 2).get_by_role(
        "button", name="Promote to PRODUCTION"
    ).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Meets everything PRODUCTION requires").wait_for()
    dialog.get_by_label("Reason").fill("beats v4 on the holdout set")
    screenshot(page, "promote-dialog")
    dialog.get_by_role("button", name="Promote to PRODUCTION").click()

    # then the dialog closes and the deployer's board shows v2 in PRODUCTION, v4 archived
    dialog.wait_for(state="detached")
    card(page, "fraud-detector", "PRODUCTION", 2).wait_for()
    card(page, "fraud-detector", "ARCHIVED", 4).wait_for()

    # and the server agrees, with the actor and reason in the audit
    assert stage_of(demo_server, "fraud-detector", 2) == "PRODUCTION"
    audit = gql(
        demo_server.base,
        '{ modelVersion(model: "fraud-detector", version: 2) { transitions { actor reason toStage } } }',
    )["modelVersion"]["transitions"][0]
    assert audit == {
        "actor": DEPLOYER,
        "reason": "beats v4 on the holdout set",
        "toStage": "PRODUCTION",
    }

    # and the reader's board changed too, without a reload
    card(other, "fraud-detector", "PRODUCTION", 2).wait_for()
    card(other, "fraud-detector", "ARCHIVED", 4).wait_for()
    assert versions_in(other, "fraud-detector", "PRODUCTION") == [2]
    assert other.evaluate("() => window.notReloaded") is True

    # when the reader's live connection drops and a change lands meanwhile
    other.evaluate("() => import('/ui/js/api.js').then((api) => api.dropConnection())")
    gql(
        demo_server.base,
        """mutation { transitionModelVersion(input: {model: "churn-model", version: 3,
          stage: STAGING, reason: "while the reader was away"}) { __typename } }""",
    )

    # then the board reconnects, resumes after its last cursor, and shows the change
    card(other, "churn-model", "STAGING", 3).wait_for()
    other.locator(".live[data-status='live']").wait_for()
    assert other.evaluate("() => window.notReloaded") is True
    assert len(reader.sockets) == 2  # one reconnection, on a new WebSocket
    afters = {
        number: message["payload"]["variables"]["after"]
        for number, message in reader.sent
        if message["type"] == "subscribe" and "lifecycleEvents" in message["payload"]["query"]
    }
    resumed = afters[2]
    assert resumed is not None
    assert resumed != afters[1]  # it had moved on with the promotion's events
    # and what happened after that cursor is exactly the change made while it was away
    since = gql(
        demo_server.base,
        "query($after: String) { events(after: $after) { nodes { type model versionNumber } } }",
        after=resumed,
    )["events"]["nodes"]
    assert since == [{"type": "STAGE_CHANGED", "model": "churn-model", "versionNumber": 3}]

    deployer.assert_clean()
    reader.assert_clean()


def test_a_policy_refusal_and_a_conflict_are_said_in_words(
    demo_server: DemoServer, watched: Watched, screenshot: Callable[..., Any]
) -> None:
    policy_and_checks(demo_server)
    page = signed_in_board(watched, demo_server, demo_server.deployer)

    # when the deployer tries to promote churn-model v2, which fails bias-audit
    card(page, "churn-model", "STAGING", 2).get_by_role(
        "button", name="Promote to PRODUCTION"
    ).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Promote to PRODUCTION").click()

    # then the refusal lists what is unmet, and nothing moved
    refusal = dialog.locator(".refusal")
    refusal.get_by_text("The promotion policy refuses this move").wait_for()
    assert "check bias-audit" in refusal.inner_text()
    screenshot(page, "policy-refusal")
    assert stage_of(demo_server, "churn-model", 2) == "STAGING"

    # and Esc closes the dialog, focus back on the board
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")

    # when someone else archives demand-forecaster v2 while the dialog is open
    card(page, "demand-forecaster", "STAGING", 2).get_by_role(
        "button", name="Promote to PRODUCTION"
    ).click()
    dialog.get_by_text("Meets everything").wait_for()
    gql(
        demo_server.base,
        """mutation { transitionModelVersion(input: {model: "demand-forecaster", version: 2,
          stage: ARCHIVED, reason: "superseded"}) { __typename } }""",
    )
    dialog.get_by_role("button", name="Promote to PRODUCTION").click()

    # then the conflict says who moved first
    refusal.get_by_text("Someone moved first").wait_for()
    text = refusal.inner_text()
    assert f"{ADMIN} moved version 2 from STAGING to ARCHIVED" in text, text
    assert stage_of(demo_server, "demand-forecaster", 2) == "ARCHIVED"
    page.get_by_role("button", name="Cancel").click()
    card(page, "demand-forecaster", "ARCHIVED", 2).wait_for()
    watched.assert_clean()


def test_a_reader_sees_no_promote_button_and_a_forced_request_is_refused(
    demo_server: DemoServer, watched: Watched
) -> None:
    # given a reader on the board
    page = signed_in_board(watched, demo_server, demo_server.reader)
    page.get_by_test_id("role").get_by_text("READER").wait_for()

    # then no card offers a move and no model a rollback
    assert page.locator(".card-actions button").count() == 0
    assert page.get_by_role("button", name="Roll back").count() == 0
    assert page.get_by_role("button", name="Promote to PRODUCTION").count() == 0

    # when the reader forces the request from the page with their own token
    answer = page.evaluate(
        """async (token) => {
            const response = await fetch("/graphql", {
              method: "POST",
              headers: {"content-type": "application/json", authorization: "Bearer " + token},
              body: JSON.stringify({query: `mutation { transitionModelVersion(input:
                {model: "fraud-detector", version: 2, stage: PRODUCTION}) {
                __typename ... on PermissionDenied { requiredRole role } } }`}),
            });
            return {status: response.status, body: await response.text()};
        }""",
        demo_server.reader,
    )

    # then the server refuses it, and nothing moved
    payload = json.loads(answer["body"])["data"]["transitionModelVersion"]
    assert payload == {
        "__typename": "PermissionDenied",
        "requiredRole": "DEPLOYER",
        "role": "READER",
    }
    assert answer["status"] == 200
    assert stage_of(demo_server, "fraud-detector", 2) == "STAGING"
    watched.assert_clean()


def upload(server: DemoServer, run_id: str, path: str, body: bytes) -> str:
    response = httpx.put(
        f"{server.base}/artifacts/runs/{run_id}/{path}",
        content=body,
        headers={"Authorization": f"Bearer {server.admin}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["digest"])


def test_the_version_page_shows_lineage_files_validations_and_audit(
    demo_server: DemoServer, watched: Watched, screenshot: Callable[..., Any]
) -> None:
    # given churn-model v5, registered from a run with files, validated and promoted
    policy_and_checks(demo_server)
    run = gql(
        demo_server.base,
        '{ bestRun(experiment: "churn-prediction", metric: "f1") { id name } }',
    )["bestRun"]
    weights = b"\x00weights\x01" * 100
    digest = upload(demo_server, run["id"], "model/model.bin", weights)
    upload(demo_server, run["id"], "model/MLmodel", b"flavors:\n  python_function: {}\n")
    gql(
        demo_server.base,
        """mutation($run: ID!, $source: String!) { registerModelVersion(input: {
          model: "churn-model", runId: $run, source: $source,
          description: "Retrained on November's data"}) { __typename } }""",
        run=run["id"],
        source=f"runs:/{run['id']}/model",
    )
    for check in ("integration-tests", "bias-audit"):
        gql(
            demo_server.base,
            """mutation($c: String!) { recordValidation(input: {model: "churn-model",
              version: 5, check: $c, status: PASSED, metrics: [{key: "accuracy", value: 0.93}]})
              { __typename } }""",
            c=check,
        )
    gql(
        demo_server.base,
        """mutation { transitionModelVersion(input: {model: "churn-model", version: 5,
          stage: STAGING, reason: "candidate for the December release"}) { __typename } }""",
    )

    # when its page opens
    page = watched.open(
        demo_server.base, "#/models/churn-model/versions/5", token=demo_server.admin
    )
    page.get_by_role("heading", name="Lineage").wait_for()

    # then it shows the run it came from, with params and metrics, linked
    assert page.get_by_role("link", name=run["name"]).get_attribute("href") == f"#/runs/{run['id']}"
    assert page.locator("table").filter(has_text="learning_rate").count() == 1
    assert page.locator("table").filter(has_text="latency_ms").count() == 1

    # and its files with their digests, and a download that carries the token
    files = page.locator("table").filter(has_text="model.bin")
    assert digest in files.inner_text()
    with page.expect_download() as downloading:
        page.get_by_role("button", name="Download model.bin").click()
    saved = downloading.value.path()
    assert saved is not None
    assert saved.read_bytes() == weights

    # and its validations, and the audit of its move with actor and reason
    assert page.locator("table").filter(has_text="bias-audit").count() == 1
    audit = page.locator(".timeline").inner_text()
    assert "candidate for the December release" in audit
    assert ADMIN in audit

    # and "what was in PRODUCTION at…": now, version 4
    page.get_by_role("button", name="Show").click()
    page.locator(".at-answer").get_by_text("version 4").wait_for()
    page.evaluate("() => window.scrollTo(0, 0)")
    screenshot(page, "version-page", docs=True)
    watched.assert_clean()


def test_the_event_feed_filters_and_pages(
    demo_server: DemoServer, watched: Watched, screenshot: Callable[..., Any]
) -> None:
    page = watched.open(
        demo_server.base, "#/events?model=churn-model&type=STAGE_CHANGED", token=demo_server.reader
    )
    page.locator(".feed li").first.wait_for()
    types = set(page.locator(".feed li").evaluate_all("ls => ls.map(l => l.dataset.type)"))
    assert types == {"STAGE_CHANGED"}
    assert page.locator(".feed li").filter(has_text="fraud-detector").count() == 0
    # the demo moved churn-model six times
    assert page.locator(".feed li").count() == 6

    # a change arrives live, on top
    page.locator(".live[data-status='live']").wait_for()
    gql(
        demo_server.base,
        """mutation { transitionModelVersion(input: {model: "churn-model", version: 3,
          stage: STAGING, reason: "live"}) { __typename } }""",
    )
    page.locator(".feed li.new").get_by_text("“live”").wait_for()
    assert page.locator(".feed li").count() == 7

    # all events, paged back 50 at a time: 25 more events make two pages
    many = " ".join(
        f"""v{i}: recordValidation(input: {{model: "fraud-detector", version: 3,
          check: "nightly-{i}", status: PASSED}}) {{ __typename }}"""
        for i in range(25)
    )
    gql(demo_server.base, f"mutation {{ {many} }}")
    total = len(
        gql(demo_server.base, "{ events(first: 500) { nodes { cursor } } }")["events"]["nodes"]
    )
    assert 50 < total <= 100
    page.goto(f"{demo_server.base}/#/events")
    page.get_by_role("button", name="Show older").wait_for()
    shown = page.locator(".feed li").count()
    assert shown == 50
    page.get_by_role("button", name="Show older").click()
    page.wait_for_function("n => document.querySelectorAll('.feed li').length === n", arg=total)
    # newest first all the way down, no event twice
    times = page.locator(".feed li time").evaluate_all("ts => ts.map(t => t.dateTime)")
    assert times == sorted(times, reverse=True)
    assert page.get_by_role("button", name="Show older").count() == 0
    screenshot(page, "events")
    watched.assert_clean()


def test_at_phone_width_the_nav_collapses_and_the_board_is_one_column(
    demo_server: DemoServer, open_page: Callable[..., Watched], screenshot: Callable[..., Any]
) -> None:
    phone = open_page(PHONE)
    small = signed_in_board(phone, demo_server, demo_server.deployer)
    assert small.get_by_role("link", name="Experiments").is_hidden()
    columns = small.locator("[data-model='churn-model'] [data-stage]")
    xs = {
        round(box["x"])
        for box in columns.evaluate_all("cs => cs.map(c => c.getBoundingClientRect().toJSON())")
    }
    assert len(xs) == 1  # stacked, not side by side
    screenshot(small, "board-phone")
    small.get_by_role("button", name="Menu").click()
    small.get_by_role("link", name="Experiments").wait_for()
    small.get_by_role("link", name="Events").click()
    small.locator(".feed li").first.wait_for()
    assert small.get_by_role("link", name="Experiments").is_hidden()
    phone.assert_clean()


def test_rolling_back_restores_the_previous_production_version(
    demo_server: DemoServer, watched: Watched
) -> None:
    # given fraud-detector: v4 in PRODUCTION, replacing v1 (now ARCHIVED)
    page = signed_in_board(watched, demo_server, demo_server.deployer)

    # when the deployer rolls it back, with a reason
    page.locator("[data-model='fraud-detector']").get_by_role("button", name="Roll back").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Reason").fill("v4 doubles the p99 latency")
    dialog.get_by_role("button", name="Roll back").click()

    # then v1 is back in PRODUCTION and v4 archived, on the board and on the server
    dialog.wait_for(state="detached")
    card(page, "fraud-detector", "PRODUCTION", 1).wait_for()
    card(page, "fraud-detector", "ARCHIVED", 4).wait_for()
    page.get_by_role("status").get_by_text("version 1 is back in PRODUCTION").wait_for()
    assert stage_of(demo_server, "fraud-detector", 1) == "PRODUCTION"
    rolled = gql(
        demo_server.base,
        '{ modelVersion(model: "fraud-detector", version: 1) { transitions { rollback reason actor } } }',
    )["modelVersion"]["transitions"][0]
    assert rolled == {"rollback": True, "reason": "v4 doubles the p99 latency", "actor": DEPLOYER}
    watched.assert_clean()
