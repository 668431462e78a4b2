"""The experiments and runs pages in a real browser against a real server with demo data
(auth on, signed in as a READER): the experiments list, the leaderboard's sort and filter,
compare, a run's chart growing as ANOTHER client logs points through GraphQL, and a
10,000-point series. Every test also checks that nothing left 127.0.0.1, failed or
complained. Charts say how many points they hold in `data-points` (and `data-drawn`: the
non-null values handed to uPlot at the last redraw); the tests count those, never time.

Screenshots go to test-artifacts/ui/; MODELGRAPH_DOCS_IMG=1 also refreshes
docs/img/run-page.png (the README's picture) from the live run page."""

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.ui.conftest import LOCAL, PHONE, DemoServer, Watched

pytestmark = pytest.mark.browser

EXPERIMENT = "fraud-detection"
ROWS = "table.leaderboard tbody tr"
ROW_IDS = f"() => [...document.querySelectorAll('{ROWS}')].map(r => r.dataset.run)"
RUNS = """query($experiment: String!, $filter: RunFilter, $orderBy: RunOrder) {
  runs(experiment: $experiment, filter: $filter, orderBy: $orderBy, first: 50) {
    nodes { id name params { key value } } } }"""
START = """mutation($experiment: String!, $name: String!) {
  startRun(input: {experiment: $experiment, name: $name,
                   params: [{key: "learning_rate", value: "0.01"}]}) {
    __typename ... on StartRunSuccess { run { id } } ... on Error { message } } }"""
LOG = """mutation($input: LogMetricsInput!) {
  logMetrics(input: $input) { __typename ... on LogMetricsSuccess { count } ... on Error { message } } }"""
END = """mutation($id: ID!) {
  endRun(input: {runId: $id}) { __typename ... on Error { message } } }"""


def api(server: DemoServer, query: str, token: str, **variables: Any) -> dict[str, Any]:
    """Another client: a plain GraphQL POST with httpx, as a training script would send."""
    response = httpx.post(
        f"{server.base}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def start_run(server: DemoServer, name: str) -> str:
    started = api(server, START, server.writer, experiment="live-training", name=name)
    assert started["startRun"]["__typename"] == "StartRunSuccess", started
    return str(started["startRun"]["run"]["id"])


def log_series(
    server: DemoServer, run_id: str, key: str, steps: list[int], values: list[float]
) -> None:
    series = {"key": key, "steps": steps, "values": values}
    logged = api(server, LOG, server.writer, input={"runId": run_id, "series": [series]})
    assert logged["logMetrics"] == {"__typename": "LogMetricsSuccess", "count": len(steps)}, logged


def chart_points(page: Any, key: str) -> int:
    return int(page.locator(f'figure.chart[data-metric="{key}"]').get_attribute("data-points"))


def wait_for_points(page: Any, key: str, count: int, *, timeout: float = 30_000) -> None:
    page.wait_for_function(
        """([key, count]) => {
          const chart = document.querySelector(`figure.chart[data-metric="${key}"]`);
          return chart && Number(chart.dataset.points) === count && Number(chart.dataset.drawn) === count;
        }""",
        arg=[key, count],
        timeout=timeout,
    )


def assert_local_and_clean(watched: Watched) -> None:
    assert watched.requests, "the page made no request"
    assert all(
        url.startswith("data:") or urlsplit(url).hostname == LOCAL for url in watched.requests
    ), watched.requests
    watched.assert_clean()


def test_the_experiments_list_shows_the_demo_experiments_with_their_run_counts(
    demo_server: DemoServer, watched: Watched
) -> None:
    page = watched.open(demo_server.base, "#/experiments", token=demo_server.reader)

    rows = page.locator("table.data tbody tr")
    page.locator('tr[data-experiment="demand-forecast"]').wait_for()
    names = rows.evaluate_all("rows => rows.map(r => r.dataset.experiment)")
    assert {"fraud-detection", "churn-prediction", "demand-forecast"} <= set(names)
    # the demo spreads its 60 runs over its three experiments
    counts = {
        name: int(page.locator(f'tr[data-experiment="{name}"] td.num').inner_text())
        for name in ("fraud-detection", "churn-prediction", "demand-forecast")
    }
    assert counts == dict.fromkeys(counts, 20), counts

    # and a name is a real link to that experiment's leaderboard
    page.get_by_role("link", name=EXPERIMENT, exact=True).click()
    page.locator(ROWS).first.wait_for()
    assert page.url.endswith(f"#/experiments/{EXPERIMENT}")
    assert_local_and_clean(watched)


def test_the_leaderboard_sorts_by_a_metric_and_filters_by_a_param_with_its_state_in_the_url(
    demo_server: DemoServer, watched: Watched, screenshot: Callable[..., Path]
) -> None:
    # given the API's own answers for the same questions
    token = demo_server.reader
    by_auc = api(
        demo_server,
        RUNS,
        token,
        experiment=EXPERIMENT,
        orderBy={"metric": "auc", "direction": "DESC"},
    )["runs"]["nodes"]
    by_auc_asc = api(
        demo_server,
        RUNS,
        token,
        experiment=EXPERIMENT,
        orderBy={"metric": "auc", "direction": "ASC"},
    )["runs"]["nodes"]
    depths = [p["value"] for r in by_auc for p in r["params"] if p["key"] == "max_depth"]
    depth = max(set(depths), key=depths.count)
    with_depth = [
        r["id"]
        for r in api(
            demo_server,
            RUNS,
            token,
            experiment=EXPERIMENT,
            filter={"params": [{"key": "max_depth", "value": depth}]},
            orderBy={"metric": "auc", "direction": "ASC"},
        )["runs"]["nodes"]
    ]
    assert 0 < len(with_depth) < 20
    page = watched.open(demo_server.base, f"#/experiments/{EXPERIMENT}", token=token)
    page.locator(ROWS).first.wait_for()
    assert page.locator(ROWS).count() == 20

    # when the auc column's header (a button) is pressed
    header = page.locator('button.sort[data-sort="auc"]')
    header.click()

    # then the rows are the API's best-first order, and the header says so
    page.wait_for_function(
        f"ids => JSON.stringify(({ROW_IDS})()) === JSON.stringify(ids)",
        arg=[r["id"] for r in by_auc],
    )
    assert (
        page.locator('th:has(button.sort[data-sort="auc"])').get_attribute("aria-sort")
        == "descending"
    )
    values = page.locator(f'{ROWS} td[data-metric="auc"]').evaluate_all(
        "cells => cells.map(c => Number(c.dataset.value))"
    )
    assert values == sorted(values, reverse=True)

    # and pressed again (with the keyboard), ascending
    page.locator('button.sort[data-sort="auc"]').focus()
    page.keyboard.press("Enter")
    page.wait_for_function(
        f"ids => JSON.stringify(({ROW_IDS})()) === JSON.stringify(ids)",
        arg=[r["id"] for r in by_auc_asc],
    )
    assert (
        page.locator('th:has(button.sort[data-sort="auc"])').get_attribute("aria-sort")
        == "ascending"
    )

    # when a param filter is added
    page.get_by_label("Filter on", exact=True).select_option("param")
    page.get_by_label("Key", exact=True).fill("max_depth")
    page.get_by_label("Value", exact=True).fill(depth)
    page.get_by_role("button", name="Add filter").click()

    # then only the runs with that param remain, still sorted, and the filter shows as a chip
    page.wait_for_function(
        f"ids => JSON.stringify(({ROW_IDS})()) === JSON.stringify(ids)", arg=with_depth
    )
    cells = page.locator(f'{ROWS} td[data-param="max_depth"]').all_inner_texts()
    assert cells == [depth] * len(with_depth)
    page.get_by_role("button", name=f"Remove filter param max_depth = {depth}").wait_for()

    # and the view is a link: its URL, opened afresh, shows the same rows
    query = urlsplit(page.url).fragment.split("?", 1)[1]
    assert "sort=auc" in query
    assert "dir=ASC" in query
    assert f"p=max_depth%3D{depth}" in query
    screenshot(page, "leaderboard")
    page.reload()
    page.wait_for_function(
        f"ids => JSON.stringify(({ROW_IDS})()) === JSON.stringify(ids)", arg=with_depth
    )

    # when the param filter goes and a metric filter on the best auc ever comes
    page.get_by_role("button", name=f"Remove filter param max_depth = {depth}").click()
    page.get_by_label("Metric values").select_option("MAX")
    page.get_by_label("Filter on", exact=True).select_option("metric")
    page.get_by_label("Key", exact=True).fill("auc")
    page.get_by_label("Operator").select_option("GT")
    page.get_by_label("Value", exact=True).fill("0.7")
    page.get_by_role("button", name="Add filter").click()

    # then the rows are the API's answer to the same filter and order
    above = api(
        demo_server,
        RUNS,
        token,
        experiment=EXPERIMENT,
        filter={"metrics": [{"metric": "auc", "op": "GT", "value": 0.7, "aggregate": "MAX"}]},
        orderBy={"metric": "auc", "direction": "ASC", "aggregate": "MAX"},
    )["runs"]["nodes"]
    assert 0 < len(above) < 20
    page.wait_for_function(
        f"ids => JSON.stringify(({ROW_IDS})()) === JSON.stringify(ids)",
        arg=[r["id"] for r in above],
    )
    shown = page.locator(f'{ROWS} td[data-metric="auc"]').evaluate_all(
        "cells => cells.map(c => Number(c.dataset.value))"
    )
    assert all(v > 0.7 for v in shown), shown
    assert page.get_by_role("button", name="auc (max) ▲").count() == 1

    # and status and tag filters narrow it the same way as the API
    page.get_by_role("button", name="Remove filter max(auc) > 0.7").click()
    page.get_by_label("FINISHED").check()
    page.get_by_label("Filter on", exact=True).select_option("tag")
    page.get_by_label("Key", exact=True).fill("team")
    page.get_by_label("Value", exact=True).fill("risk")
    page.get_by_role("button", name="Add filter").click()
    finished_risk = api(
        demo_server,
        RUNS,
        token,
        experiment=EXPERIMENT,
        filter={"status": ["FINISHED"], "tags": [{"key": "team", "value": "risk"}]},
        orderBy={"metric": "auc", "direction": "ASC", "aggregate": "MAX"},
    )["runs"]["nodes"]
    assert 0 < len(finished_risk) < 20
    page.wait_for_function(
        f"ids => JSON.stringify(({ROW_IDS})()) === JSON.stringify(ids)",
        arg=[r["id"] for r in finished_risk],
    )
    assert "status=FINISHED" in page.url
    assert "t=team%3Drisk" in page.url
    assert_local_and_clean(watched)


def test_the_leaderboard_pages_with_load_more_and_scrolls_inside_its_box_at_phone_width(
    demo_server: DemoServer, open_page: Callable[..., Watched], screenshot: Callable[..., Path]
) -> None:
    by_auc = api(
        demo_server,
        RUNS,
        demo_server.reader,
        experiment=EXPERIMENT,
        orderBy={"metric": "auc", "direction": "DESC"},
    )["runs"]["nodes"]
    watched = open_page(PHONE)
    page = watched.open(
        demo_server.base, f"#/experiments/{EXPERIMENT}?sort=auc&first=8", token=demo_server.reader
    )

    # pages of 8 through the connection's cursor: 8, 16, then the last 4 and no more button
    more = page.get_by_role("button", name="Load 8 more")
    for shown in (8, 16, 20):
        page.wait_for_function(f"n => ({ROW_IDS})().length === n", arg=shown)
        if shown < 20:
            more.click()
    assert page.evaluate(ROW_IDS) == [r["id"] for r in by_auc]
    assert more.is_hidden()

    # the page itself never scrolls sideways; the table does, inside its box
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    assert page.evaluate(
        "() => { const box = document.querySelector('.table-scroll');"
        " return box.scrollWidth > box.clientWidth; }"
    )
    page.evaluate("() => window.scrollTo(0, 0)")
    screenshot(page, "leaderboard-phone")
    assert_local_and_clean(watched)


def test_compare_two_runs_shows_the_params_diff_and_their_curves_overlaid(
    demo_server: DemoServer, watched: Watched, screenshot: Callable[..., Path]
) -> None:
    runs = api(demo_server, RUNS, demo_server.reader, experiment=EXPERIMENT)["runs"]["nodes"]
    params = [{p["key"]: p["value"] for p in r["params"]} for r in runs]
    # two runs whose learning rates differ
    first = 0
    second = next(
        i for i, p in enumerate(params) if p["learning_rate"] != params[0]["learning_rate"]
    )
    page = watched.open(demo_server.base, f"#/experiments/{EXPERIMENT}", token=demo_server.reader)
    page.locator(ROWS).first.wait_for()

    # when two runs are ticked and Compare is pressed
    for index in (first, second):
        page.get_by_label(f"Select {runs[index]['name']}", exact=True).check()
    page.get_by_role("link", name="Compare", exact=True).click()

    # then the compare page lists both, marks the learning rate as differing
    page.locator('tr[data-param="learning_rate"]').wait_for()
    assert page.url.endswith(f"#/compare?runs={runs[first]['id']},{runs[second]['id']}")
    lr = page.locator('tr[data-param="learning_rate"]')
    assert lr.get_attribute("data-differs") == "true"
    assert lr.locator("td").all_inner_texts() == [
        params[first]["learning_rate"],
        params[second]["learning_rate"],
    ]
    assert page.locator('tr[data-param="optimizer"]').get_attribute("data-differs") == "false"

    # and the auc chart holds both curves: 50 demo steps each
    wait_for_points(page, "auc", 100)
    legend = page.locator('figure.chart[data-metric="auc"] .u-legend').inner_text()
    assert runs[first]["name"] in legend
    assert runs[second]["name"] in legend

    # "only the differing ones" hides the rest
    page.get_by_label("Show only the differing ones").check()
    assert page.locator('tr[data-param="optimizer"]').is_hidden()
    assert lr.is_visible()
    screenshot(page, "compare", full_page=True)
    assert_local_and_clean(watched)


def test_a_running_runs_chart_grows_as_another_client_logs_points_without_a_reload(
    demo_server: DemoServer, watched: Watched, screenshot: Callable[..., Path]
) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    # given a run in training with 40 steps of history
    run_id = start_run(demo_server, "resnet-live")
    history = list(range(40))
    log_series(demo_server, run_id, "loss", history, [1.5 * 0.93**s + 0.05 for s in history])
    log_series(demo_server, run_id, "accuracy", history, [0.95 - 0.6 * 0.92**s for s in history])
    page = watched.open(demo_server.base, f"#/runs/{run_id}", token=demo_server.reader)
    wait_for_points(page, "loss", 40)
    wait_for_points(page, "accuracy", 40)
    try:
        page.locator('.live-badge[data-live="live"]').wait_for()
    except PlaywrightTimeout:
        badge = page.locator(".live-badge").evaluate("e => e.outerHTML")
        pytest.fail(f"never live: {badge}; {watched.sockets=} {watched.console=} {watched.failed=}")
    page.evaluate("() => { window.__sameDocument = true; }")

    # when another client logs more steps, a batch at a time: the subscription may take
    # effect a moment after the page says "live", so batches go on until one is seen
    logged = 40
    for _ in range(20):
        steps = list(range(logged, logged + 5))
        log_series(demo_server, run_id, "loss", steps, [1.5 * 0.93**s + 0.05 for s in steps])
        logged += 5
        try:
            wait_for_points(page, "loss", logged, timeout=3_000)
            break
        except PlaywrightTimeout:  # not yet subscribed: log another batch
            continue
    else:
        pytest.fail(f"the chart never grew: {chart_points(page, 'loss')} points, {logged} logged")

    # then every point is on the chart once (history, live, and any batch logged before the
    # subscription took effect, read again at the seam), in the same document
    for _batch in range(3):
        steps = list(range(logged, logged + 5))
        log_series(demo_server, run_id, "loss", steps, [1.5 * 0.93**s + 0.05 for s in steps])
        logged += 5
        wait_for_points(page, "loss", logged)
    assert chart_points(page, "loss") == logged
    assert chart_points(page, "accuracy") == 40
    # and the latest-metrics table moved with them: loss's last step is the last logged
    loss_row = page.locator('table.metrics-summary tr[data-metric="loss"] td')
    assert loss_row.nth(3).inner_text() == str(logged - 1)
    assert page.evaluate("() => window.__sameDocument") is True

    # a metric key first logged now gets its own chart, live
    assert page.locator('figure.chart[data-metric="val_loss"]').count() == 0
    log_series(demo_server, run_id, "val_loss", [0, 10, 20, 30], [1.4, 0.7, 0.45, 0.38])
    wait_for_points(page, "val_loss", 4)
    screenshot(page, "run-page", docs=True)  # the README's picture of the run page

    # when the run ends, the page says so
    api(demo_server, END, demo_server.writer, id=run_id)
    page.locator('.live-badge[data-live="ended"]').wait_for()
    page.locator(".run-status-finished").wait_for()
    assert_local_and_clean(watched)


def test_a_series_past_10000_points_renders_whole_across_pages_with_its_nan_as_gaps(
    demo_server: DemoServer, watched: Watched
) -> None:
    # given 12,000 points of one metric: two metricSeries pages (10,000 each at most),
    # logged in two batches (10,000 each at most), two of them NaN
    run_id = start_run(demo_server, "long-curve")
    steps = list(range(10_000))
    log_series(demo_server, run_id, "loss", steps, [1 / (1 + s / 500) for s in steps])
    tail = list(range(10_000, 12_000))
    values: list[Any] = [1 / (1 + s / 500) for s in tail]
    values[10], values[500] = "NaN", "NaN"
    log_series(demo_server, run_id, "loss", tail, values)
    api(demo_server, END, demo_server.writer, id=run_id)

    page = watched.open(demo_server.base, f"#/runs/{run_id}", token=demo_server.reader)

    # then the chart holds all 12,000, and draws all but the two NaN (gaps)
    page.wait_for_function(
        """() => {
          const chart = document.querySelector('figure.chart[data-metric="loss"]');
          return chart && chart.dataset.points === "12000" && chart.dataset.drawn === "11998";
        }"""
    )
    assert page.locator("figure.chart canvas").count() == 1
    assert_local_and_clean(watched)


VERSIONS = """query($model: String!) {
  model(name: $model) { versions(first: 50) {
    nodes { version run { id name experiment { id } } } } } }"""


def test_a_run_page_shows_its_logged_model_and_model_version_and_downloads_its_files(
    demo_server: DemoServer, watched: Watched
) -> None:
    # given a demo run that a model version was registered from, with two files
    versions = api(demo_server, VERSIONS, demo_server.reader, model="fraud-detector")
    version = next(v for v in versions["model"]["versions"]["nodes"] if v["run"])
    run_id = version["run"]["id"]
    files = {"report.txt": b"auc 0.93\n", "model/weights.bin": bytes(range(256)) * 4}
    for path, body in files.items():
        stored = httpx.put(
            f"{demo_server.base}/artifacts/runs/{run_id}/{path}",
            content=body,
            headers={"Authorization": f"Bearer {demo_server.writer}"},
            timeout=30,
        )
        assert stored.status_code < 300, stored.text

    # and a logged model (MLflow 3) it output, made through the MLflow face
    created = httpx.post(
        f"{demo_server.base}/api/2.0/mlflow/logged-models",
        json={
            "experiment_id": version["run"]["experiment"]["id"],
            "name": "fraud-clf",
            "source_run_id": run_id,
            "model_type": "sklearn",
        },
        headers={"Authorization": f"Bearer {demo_server.writer}"},
        timeout=30,
    )
    assert created.status_code == 200, created.text
    model_id = created.json()["model"]["info"]["model_id"]

    page = watched.open(demo_server.base, f"#/runs/{run_id}", token=demo_server.reader)

    # then it lists the logged model
    logged = page.locator('section[aria-label="Logged models"] li')
    logged.first.wait_for()
    assert logged.count() == 1
    assert "fraud-clf" in logged.inner_text()
    assert model_id in logged.inner_text()

    # and links the version registered from it
    link = page.get_by_role("link", name=f"fraud-detector v{version['version']}")
    link.wait_for()
    assert link.get_attribute("href") == f"#/models/fraud-detector/versions/{version['version']}"

    # and its files download with the session's token (the link alone would be refused)
    with page.expect_download() as report:
        page.get_by_role("link", name="report.txt").click()
    assert Path(report.value.path()).read_bytes() == files["report.txt"]
    folder = page.get_by_role("button", name="model/")
    folder.click()
    assert folder.get_attribute("aria-expanded") == "true"
    with page.expect_download() as weights:
        page.get_by_role("link", name="model/weights.bin").click()
    assert weights.value.suggested_filename == "weights.bin"
    assert Path(weights.value.path()).read_bytes() == files["model/weights.bin"]
    assert_local_and_clean(watched)
