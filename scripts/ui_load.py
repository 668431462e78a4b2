"""How long the web UI's models board takes to load in a real browser (Debian's headless
Chromium) on localhost, from a cold cache each time: a server on a database seeded by
`modelgraph demo`, the page opened signed in, timed until every model's board is drawn and
its live subscription acknowledged. Also what went over the wire (bytes, requests) and the
server's CPU seconds for it. Prints JSON. Numbers on a shared machine are noisy: compare
runs made on the same machine, never assert them.

    .venv/bin/python scripts/ui_load.py [--repeat 7] [--runs 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import _harness
from _harness import Server

CHROMIUM = "/usr/bin/chromium"
BOARD_DRAWN = """() => document.querySelectorAll('[data-model] [data-stage="PRODUCTION"] [data-version]').length >= 3
  && document.querySelector('.live')?.dataset.status === 'live'"""
TRANSFER = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource');
  return {
    dom_content_loaded_ms: nav.domContentLoadedEventEnd,
    requests: res.length + 1,
    transferred_bytes: nav.transferSize + res.reduce((n, r) => n + r.transferSize, 0),
    decoded_bytes: nav.decodedBodySize + res.reduce((n, r) => n + r.decodedBodySize, 0),
  };
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--runs", type=int, default=300, help="demo runs to seed")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    log = _harness.logger("ui_load")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/ui.db"
        env = {**_harness.clean_env(), "MODELGRAPH_DATABASE_URL": url}
        seeded = subprocess.run(
            [_harness.python_exe(), "-m", "app", "demo", "--runs", str(args.runs)],
            cwd=_harness.ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        log(seeded.stdout.strip())
        server = Server(url, Path(tmp) / "server.log").start()
        token = _harness.auth_headers()["Authorization"].removeprefix("Bearer ")
        loads: list[float] = []
        wire: list[dict[str, float]] = []
        cpu: list[float] = []
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM)
                for i in range(args.repeat + 1):
                    # A fresh context: no HTTP cache, no module cache.
                    context = browser.new_context(viewport={"width": 1280, "height": 800})
                    context.add_init_script(
                        f"sessionStorage.setItem('modelgraph.token', {token!r})"
                    )
                    page = context.new_page()
                    before = server.cpu_seconds()
                    started = time.perf_counter()
                    page.goto(f"{server.base_url}/#/models")
                    page.wait_for_function(BOARD_DRAWN, timeout=60_000)
                    elapsed = (time.perf_counter() - started) * 1000
                    after = server.cpu_seconds()
                    if i > 0:  # the first load warms the server's caches
                        loads.append(elapsed)
                        wire.append(page.evaluate(TRANSFER))
                        if before is not None and after is not None:
                            cpu.append(after - before)
                    context.close()
                browser.close()
        finally:
            server.stop()
    result = {
        "board_until_drawn_and_live_ms": {
            "median": round(statistics.median(loads), 1),
            "min": round(min(loads), 1),
            "max": round(max(loads), 1),
        },
        "dom_content_loaded_ms_median": round(
            statistics.median(w["dom_content_loaded_ms"] for w in wire), 1
        ),
        "requests": wire[-1]["requests"],
        "transferred_bytes": wire[-1]["transferred_bytes"],
        "decoded_bytes": wire[-1]["decoded_bytes"],
        "server_cpu_s_per_load_median": round(statistics.median(cpu), 4) if cpu else None,
        "repeat": args.repeat,
        "demo_runs": args.runs,
        "cpu": _harness.cpu_model(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
