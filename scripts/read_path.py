"""The per-request read path, measured on a real server: server CPU per request first
(the machine is shared, so wall-clock rates are noisy), requests/s second.

    .venv/bin/python scripts/read_path.py [--requests N] [--points N] [--only NAMES]
        [--profile FILE [--profile-format flamegraph|speedscope|raw]] [--database-url URL]

Starts `python -m app serve` (scripts/_harness.py Server: the harness's ADMIN token, every
request authenticated, query limits on, synchronous=FULL) on a fresh SQLite file, makes
one experiment and one run with --points points of one metric, then for each case sends
--requests requests from one keep-alive httpx client, one at a time, and reports
req/s, mean latency and the server's CPU µs per request (user + system, /proc/<pid>/stat,
over exactly those requests):

  healthz     GET /healthz (the floor of the HTTP stack and the middleware)
  typename    { __typename } (GraphQL, no database)
  experiment  experiment(name) { id name } (one indexed SELECT)
  history     run(id) { metricHistory(key, first: N) { nodes { step value timestamp } } }
              (fewer requests: --points points each)

With --profile, py-spy (the dev extra) records the server during the cases and writes a
flame graph SVG, a speedscope JSON or collapsed stacks (raw: one line per stack and its
sample count, for grep and sort). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _harness import Server, auth_headers, logger

from app.client import encode as body

log = logger("read_path")

EXPERIMENT = "read-path"
KEY = "loss"
SIMPLE = "query E($name: String!) { experiment(name: $name) { id name } }"
TYPENAME = "{ __typename }"
HISTORY = """query History($id: ID!, $key: String!, $first: Int!) {
  run(id: $id) { metricHistory(key: $key, first: $first) { nodes { step value timestamp } } }
}"""
START_RUN = """mutation Start($input: StartRunInput!) {
  startRun(input: $input) { __typename ... on StartRunSuccess { run { id } } }
}"""
LOG_METRICS = """mutation Log($input: LogMetricsInput!) {
  logMetrics(input: $input) { __typename ... on LogMetricsSuccess { count } }
}"""


def seed(client: httpx.Client, points: int) -> str:
    """One run (its experiment made with it) with `points` points of KEY; its id."""
    answer = client.post("/graphql", content=body(START_RUN, {"input": {"experiment": EXPERIMENT}}))
    run_id = str(answer.json()["data"]["startRun"]["run"]["id"])
    rng = random.Random(1)
    base = int(time.time() * 1000)
    for start in range(0, points, 1000):
        batch = [
            {"key": KEY, "value": rng.random(), "step": s, "timestamp": base + s}
            for s in range(start, min(start + 1000, points))
        ]
        sent = body(LOG_METRICS, {"input": {"runId": run_id, "points": batch}})
        result = client.post("/graphql", content=sent).json()["data"]["logMetrics"]
        if result.get("count") != len(batch):
            raise SystemExit(f"logMetrics failed: {result}")
    return run_id


def measure(
    server: Server, client: httpx.Client, request: httpx.Request, n: int, check: Any
) -> dict[str, Any]:
    for _ in range(min(50, n)):  # warm: caches, connections, the first-use imports
        check(client.send(request))
    cpu0, t0 = server.cpu_seconds(), time.perf_counter()
    for _ in range(n):
        response = client.send(request)
        if response.status_code != 200:
            raise SystemExit(f"HTTP {response.status_code}: {response.text[:300]}")
    elapsed = time.perf_counter() - t0
    cpu1 = server.cpu_seconds()
    check(response)
    cpu = (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None
    return {
        "requests": n,
        "server_cpu_us_per_request": None if cpu is None else round(cpu / n * 1e6),
        "req_per_s": round(n / elapsed, 1),
        "mean_ms": round(elapsed / n * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--history-requests", type=int, default=30)
    parser.add_argument("--only", default="healthz,typename,experiment,history")
    parser.add_argument("--profile", help="write a py-spy profile of the server here")
    parser.add_argument(
        "--profile-format", choices=("flamegraph", "speedscope", "raw"), default="flamegraph"
    )
    parser.add_argument(
        "--profile-all-threads",
        action="store_true",
        help="sample every thread that is not idle (default: only the one holding the GIL, "
        "which is the Python CPU time: waits and idle loops left out)",
    )
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="read_path-"))
    url = args.database_url or f"sqlite+aiosqlite:///{work / 'db.sqlite'}"
    server = Server(url, work / "server.log").start()
    spy: subprocess.Popen[bytes] | None = None
    results: dict[str, Any] = {}
    try:
        headers = {**auth_headers(), "content-type": "application/json"}
        with httpx.Client(base_url=server.base_url, headers=headers, trust_env=False) as client:
            run_id = seed(client, args.points)

            def ok_json(path: tuple[str, ...]) -> Any:
                def check(response: httpx.Response) -> None:
                    data = response.json()
                    if data.get("errors"):
                        raise SystemExit(f"errors: {data['errors']}")
                    value: Any = data["data"]
                    for part in path:
                        value = value[part]
                    if value is None:
                        raise SystemExit(f"no {'.'.join(path)} in {str(data)[:300]}")

                return check

            cases = {
                "healthz": (client.build_request("GET", "/healthz"), args.requests, lambda r: None),
                "typename": (
                    client.build_request("POST", "/graphql", content=body(TYPENAME)),
                    args.requests,
                    ok_json(("__typename",)),
                ),
                "experiment": (
                    client.build_request(
                        "POST", "/graphql", content=body(SIMPLE, {"name": EXPERIMENT})
                    ),
                    args.requests,
                    ok_json(("experiment", "id")),
                ),
                "history": (
                    client.build_request(
                        "POST",
                        "/graphql",
                        content=body(HISTORY, {"id": run_id, "key": KEY, "first": args.points}),
                    ),
                    args.history_requests,
                    ok_json(("run", "metricHistory", "nodes")),
                ),
            }
            if args.profile:
                spy = start_profiler(
                    server, args.profile, args.profile_format, args.profile_all_threads
                )
            for name in args.only.split(","):
                request, n, check = cases[name]
                log(f"{name}: {n} requests")
                results[name] = measure(server, client, request, n, check)
                log(f"{name}: {results[name]}")
    finally:
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=60)
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"points": args.points, **results}, indent=2))


def start_profiler(
    server: Server, out: str, fmt: str, all_threads: bool
) -> subprocess.Popen[bytes]:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    assert server.proc is not None
    command = [spy, "record", "--pid", str(server.proc.pid), "--rate", "500", "-o", out]
    command += ["--format", fmt, *([] if all_threads else ["--gil"])]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached before the first request
    return proc


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
