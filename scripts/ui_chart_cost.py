"""What the web UI's charts cost in a real browser (Debian's headless Chromium): a run page
with a 10,000-point metric opened from scratch, and charts.js's redraw of 10,000 points (one
curve, and five overlaid as on the compare page), measured in the page with
performance.now(). Prints JSON. Numbers on a shared machine are noisy: compare runs made
on the same machine, never assert them.

    .venv/bin/python scripts/ui_chart_cost.py [--points 10000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import _harness
from _harness import Server

CHROMIUM = "/usr/bin/chromium"
START = """mutation($name: String!) { startRun(input: {experiment: "ui-chart-cost", name: $name}) {
  ... on StartRunSuccess { run { id } } } }"""
LOG = "mutation($input: LogMetricsInput!) { logMetrics(input: $input) { __typename } }"
END = "mutation($id: ID!) { endRun(input: {runId: $id}) { __typename } }"

# In the page: build charts with charts.js itself and time their draw().
DRAW_COST = """async ([points, curves, repeat]) => {
  const { MetricChart } = await import("/ui/js/charts.js");
  const chart = new MetricChart({ title: "cost", labels: Array.from({ length: curves }, (_, i) => "run " + i) });
  chart.el.style.width = "1200px";
  document.body.append(chart.el);
  const steps = Array.from({ length: points }, (_, i) => i);
  const t0 = performance.now();
  for (let c = 0; c < curves; c++) {
    chart.appendColumns(c, { steps, values: steps.map((s) => Math.exp(-s / 3000) + c * 0.01),
                             timestamps: steps.map((s) => 1700000000000 + s) });
  }
  const addMs = performance.now() - t0;
  chart.draw(); // the first draw builds the uPlot instance
  await Promise.resolve();
  const first = performance.now();
  // uPlot paints in a microtask after setData: await it, so each paint is counted
  for (let i = 0; i < repeat; i++) {
    chart.draw();
    await Promise.resolve();
  }
  const drawMs = (performance.now() - first) / repeat;
  const held = Number(chart.el.dataset.drawn);
  chart.destroy();
  return { points_per_curve: points, curves, held, add_ms: addMs, redraw_ms: drawMs };
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    log = _harness.logger("ui_chart_cost")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/cost.db"
        server = Server(url, Path(tmp) / "server.log").start()
        try:
            with server.client() as client:
                run_id = client.execute(START, {"name": "long"})["startRun"]["run"]["id"]
                steps = list(range(args.points))
                series = {"key": "loss", "steps": steps, "values": [1 / (1 + s) for s in steps]}
                client.execute(LOG, {"input": {"runId": run_id, "series": [series]}})
                client.execute(END, {"id": run_id})
            token = _harness.auth_headers()["Authorization"].removeprefix("Bearer ")
            log(f"run {run_id} with {args.points} points; opening the run page")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM)
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                context.add_init_script(f"sessionStorage.setItem('modelgraph.token', {token!r})")
                page = context.new_page()
                started = time.perf_counter()
                page.goto(f"{server.base_url}/#/runs/{run_id}")
                page.wait_for_function(
                    "n => Number(document.querySelector('figure.chart')?.dataset.drawn) === n",
                    arg=args.points,
                    timeout=120_000,
                )
                page_ms = (time.perf_counter() - started) * 1000
                single = page.evaluate(DRAW_COST, [args.points, 1, args.repeat])
                overlaid = page.evaluate(DRAW_COST, [args.points, 5, args.repeat])
                browser.close()
        finally:
            server.stop()
    result = {
        "run_page_until_drawn_ms": round(page_ms, 1),
        "one_curve": {k: round(v, 2) if isinstance(v, float) else v for k, v in single.items()},
        "five_curves": {k: round(v, 2) if isinstance(v, float) else v for k, v in overlaid.items()},
        "repeat": args.repeat,
        "cpu": _harness.cpu_model(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
