"""Benchmark a real modelgraph server over HTTP and print one JSON object on stdout.

    scripts/bench [--quick] [--database-url URL] [--keep] [--time-limit SECONDS]
    scripts/bench --artifacts [--artifact-mb MB] [--database-url URL] [--keep]

Starts `python -m app serve` on a free 127.0.0.1 port against a fresh SQLite file in a
temporary directory (or, with --database-url, a freshly reset PostgreSQL `test` database),
waits for /healthz, and measures over HTTP with keep-alive clients:

  * logMetrics throughput, 1,000-point batches (one client, then 4 concurrent clients),
    first as `points` (one object per point), then as `series` (per-key columns: 5 keys
    x 200 values, steps and timestamps per call), then the same points through the MLflow
    face's `runs/log-batch` as MlflowClient.log_batch sends them (`mlflow_log_batch_*`);
  * bestRun p50/p95 over N runs with 5 metrics each (LAST, aggregate MAX, with a filter);
    the runs are bulk-inserted into the database directly, the queries go over HTTP and
    their answers are checked against the best runs computed here;
  * metricHistory (connection, `nodes { step value timestamp }`) and metricSeries
    (columns) p50/p95 for fetching a whole 10,000-point series in one request; the
    answers are checked against the points logged;
  * transitionModelVersion p50 (DEVELOPMENT <-> STAGING).

With --artifacts it measures only artifact transfers instead: one file of --artifact-mb
(default 256) uploaded to a run and downloaded back (verified) through app.client's
streamed transfers against the local store, MB/s each way, and the server's RSS (VmRSS
from /proc, sampled every 20 ms) before, at its peak during each transfer, and after.

Progress goes to stderr; the JSON goes to stdout. The server is stopped at the end, also
on errors and on SIGTERM/SIGINT. Every loop is bounded in count and in time.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import contextlib
import dataclasses
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from _harness import (
    REGISTER,
    TOKEN_ENV,
    Deadline,
    Server,
    add_root_to_path,
    check_postgres_url,
    cpu_model,
    exit_on_sigterm,
    expect_typename,
    logger,
    package_versions,
    percentile,
    ratio,
    reset_postgres,
    rounded,
    stats_ms,
)

add_root_to_path()  # _seed_runs imports the app

from app.client import Client, ClientError, data_of  # noqa: E402 (after the path)
from app.client import encode as body  # noqa: E402

BATCH_SIZE = 1000
MLFLOW_LOG_BATCH = "/api/2.0/mlflow/runs/log-batch"
METRIC_KEYS = ("loss", "accuracy", "f1", "auc", "latency_ms")
# The series form of a 1,000-point batch: one column set per key, 200 points each.
SERIES_PER_KEY = BATCH_SIZE // len(METRIC_KEYS)
# Value ranges of the seeded metrics; 3 steps per metric so MIN/MAX differ from LAST.
METRIC_RANGES = {
    "loss": (0.0, 1.5),
    "accuracy": (0.5, 1.0),
    "f1": (0.3, 0.95),
    "auc": (0.5, 1.0),
    "latency_ms": (10.0, 60.0),
}
SEED_STEPS = 3
# bestRun searches EXPERIMENT, which holds only the seeded runs; runs made over HTTP
# (ingestion, history) go to INGEST_EXPERIMENT so they never compete for best.
EXPERIMENT = "bench"
INGEST_EXPERIMENT = "bench-ingest"
MODEL = "bench-model"
ACTOR = "bench"

MLFLOW = {
    "source": "figures given for an MLflow 3.x tracking server on this machine class",
    "logMetrics_points_per_s": 11_700,
    "bestRun_ms": 430,
    "bestRun_runs": 5_000,
    "metricHistory_10k_points_ms": 385,
}


@dataclass(frozen=True)
class Sizes:
    ingest_batches: int
    concurrent_clients: int
    seed_runs: int
    best_run_queries: int
    history_points: int
    history_fetches: int
    transitions: int
    # PostgreSQL only: ANALYZE after the bulk seed (see _seed_runs).
    analyze_postgres: bool = True


FULL = Sizes(
    ingest_batches=100,
    concurrent_clients=4,
    seed_runs=10_000,
    best_run_queries=200,
    history_points=10_000,
    history_fetches=20,
    transitions=200,
)
QUICK = Sizes(
    ingest_batches=12,
    concurrent_clients=4,
    seed_runs=1_000,
    best_run_queries=30,
    history_points=2_000,
    history_fetches=5,
    transitions=30,
)

LOG_METRICS = """
mutation Log($input: LogMetricsInput!) {
  logMetrics(input: $input) {
    __typename
    ... on LogMetricsSuccess { count }
    ... on Error { code message }
  }
}"""

START_RUN = """
mutation Start($input: StartRunInput!) {
  startRun(input: $input) {
    __typename
    ... on StartRunSuccess { run { id } }
    ... on Error { code message }
  }
}"""

BEST_RUN = """
query Best($experiment: String!, $metric: String!, $goal: MetricGoal!,
           $aggregate: MetricAggregate!, $filter: RunFilter) {
  bestRun(experiment: $experiment, metric: $metric, goal: $goal,
          aggregate: $aggregate, filter: $filter) { id name }
}"""

HISTORY = """
query History($id: ID!, $key: String!, $first: Int!) {
  run(id: $id) {
    metricHistory(key: $key, first: $first) { nodes { step value timestamp } }
  }
}"""

SERIES = """
query Series($id: ID!, $key: String!, $first: Int!) {
  run(id: $id) {
    metricSeries(key: $key, first: $first) {
      key steps values timestamps pageInfo { hasNextPage endCursor }
    }
  }
}"""

SERIES_PACKED = """
query SeriesPacked($id: ID!, $key: String!, $first: Int!) {
  run(id: $id) {
    metricSeries(key: $key, first: $first) {
      key packed { steps values timestamps } pageInfo { hasNextPage endCursor }
    }
  }
}"""

TRANSITION = """
mutation Transition($input: TransitionModelVersionInput!) {
  transitionModelVersion(input: $input) {
    __typename
    ... on TransitionModelVersionSuccess { modelVersion { version stage } }
    ... on Error { code message }
  }
}"""


class BenchError(RuntimeError):
    pass


# A measured section: (server, sizes, deadline, shared state) -> its JSON block.
Section = Callable[["Server", "Sizes", "Deadline", dict[str, Any]], dict[str, Any]]


log = logger("bench")


def latency_summary(seconds: list[float]) -> dict[str, Any]:
    return stats_ms(seconds, ("p50", "p95", "mean", "min", "max"))


# ---------------------------------------------------------------- HTTP helpers


def client_for(server: Server) -> Client:
    return server.client()


def data(response: httpx.Response) -> dict[str, Any]:
    try:
        return data_of(response)
    except ClientError as exc:
        raise BenchError(f"HTTP {exc.status}: {exc.errors or exc.message}") from exc


def post(client: Client, payload: bytes) -> tuple[float, dict[str, Any], int]:
    """Send one pre-encoded GraphQL request; (seconds, decoded JSON, response bytes)."""
    started = time.perf_counter()
    response = client.send(payload)
    elapsed = time.perf_counter() - started
    return elapsed, data(response), len(response.content)


def post_read(client: Client, payload: bytes) -> tuple[float, float, dict[str, Any], int]:
    """Like post, for reads: (round-trip seconds, client JSON-decode seconds, data, bytes)."""
    started = time.perf_counter()
    response = client.send(payload)
    elapsed = time.perf_counter() - started
    started = time.perf_counter()
    json.loads(response.content)  # timed alone: what a client pays to decode the answer
    decode = time.perf_counter() - started
    return elapsed, decode, data(response), len(response.content)


def expect_success(result: dict[str, Any], typename: str) -> dict[str, Any]:
    return expect_typename(result, typename, BenchError)


def start_run(client: Client, name: str) -> str:
    variables = {"input": {"experiment": INGEST_EXPERIMENT, "name": name}}
    _, data, _ = post(client, body(START_RUN, variables))
    return str(expect_success(data["startRun"], "StartRunSuccess")["run"]["id"])


def metric_batches(
    run_id: str,
    batches: int,
    rng: random.Random,
    keys: tuple[str, ...],
    first_step: int = 0,
    base_ms: int | None = None,
) -> list[bytes]:
    """Pre-encoded logMetrics requests of BATCH_SIZE points, keys round-robin, steps rising;
    timestamp = base_ms + step."""
    out = []
    base_ms = int(time.time() * 1000) if base_ms is None else base_ms
    per_step = len(keys)
    for b in range(batches):
        points = []
        for j in range(BATCH_SIZE):
            step = first_step + (b * BATCH_SIZE + j) // per_step
            points.append(
                {
                    "key": keys[j % per_step],
                    "value": rng.random(),
                    "step": step,
                    "timestamp": base_ms + step,
                }
            )
        out.append(body(LOG_METRICS, {"input": {"runId": run_id, "points": points}}))
    return out


def series_batches(
    run_id: str, batches: int, rng: random.Random, keys: tuple[str, ...], first_step: int = 0
) -> list[bytes]:
    """The same points as metric_batches (BATCH_SIZE per request, every key at each step,
    steps rising, timestamp = base + step) in the `series` form: one column set per key."""
    out = []
    base_ms = int(time.time() * 1000)
    per_key = BATCH_SIZE // len(keys)
    if per_key * len(keys) != BATCH_SIZE:
        raise BenchError(f"{BATCH_SIZE} points do not split evenly over {len(keys)} keys")
    for b in range(batches):
        steps = list(range(first_step + b * per_key, first_step + (b + 1) * per_key))
        timestamps = [base_ms + step for step in steps]
        series = [
            {
                "key": key,
                "values": [rng.random() for _ in steps],
                "steps": steps,
                "timestamps": timestamps,
            }
            for key in keys
        ]
        out.append(body(LOG_METRICS, {"input": {"runId": run_id, "series": series}}))
    return out


def mlflow_batches(
    run_id: str, batches: int, rng: random.Random, keys: tuple[str, ...], first_step: int = 0
) -> list[bytes]:
    """The same points as metric_batches, as MLflow's client sends them through its log_batch
    (POST /api/2.0/mlflow/runs/log-batch, up to 1,000 metrics per request)."""
    out = []
    base_ms = int(time.time() * 1000)
    per_step = len(keys)
    for b in range(batches):
        metrics = []
        for j in range(BATCH_SIZE):
            step = first_step + (b * BATCH_SIZE + j) // per_step
            metrics.append(
                {
                    "key": keys[j % per_step],
                    "value": rng.random(),
                    "timestamp": base_ms + step,
                    "step": step,
                }
            )
        out.append(json.dumps({"run_id": run_id, "metrics": metrics}).encode())
    return out


def send_batches(
    client: Client, payloads: list[bytes], end: float, form: str = "points"
) -> tuple[list[float], int]:
    """Send until done or `end`; returns (latencies, points written)."""
    latencies: list[float] = []
    written = 0
    for payload in payloads:
        if time.monotonic() > end:
            break
        if form == "mlflow":
            elapsed, count = post_mlflow_batch(client, payload)
            written += count
        else:
            elapsed, data, _ = post(client, payload)
            written += int(expect_success(data["logMetrics"], "LogMetricsSuccess")["count"])
        latencies.append(elapsed)
    return latencies, written


def post_mlflow_batch(client: Client, payload: bytes) -> tuple[float, int]:
    """One log-batch request to the MLflow face; (seconds, metrics it carried)."""
    url = client.url.removesuffix("/graphql") + MLFLOW_LOG_BATCH
    started = time.perf_counter()
    response = client.http.post(url, content=payload)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise BenchError(f"log-batch: HTTP {response.status_code}: {response.text[:300]}")
    return elapsed, len(json.loads(payload)["metrics"])


# ---------------------------------------------------------------- sections


BatchMaker = Callable[[str, int, random.Random, tuple[str, ...]], list[bytes]]


def _ingest_single(
    server: Server, sizes: Sizes, deadline: Deadline, make: BatchMaker, form: str
) -> dict[str, Any]:
    rng = random.Random(1)
    with client_for(server) as client:
        run_id = start_run(client, f"ingest-{form}-single")
        payloads = make(run_id, sizes.ingest_batches, rng, METRIC_KEYS)
        warm = make(start_run(client, f"ingest-{form}-warmup"), 3, rng, METRIC_KEYS)
        send_batches(client, warm, deadline.budget(30), form)
        log(f"logMetrics ({form}): 1 client, {len(payloads)} batches of {BATCH_SIZE}")
        end = deadline.budget(90)
        cpu0, t0 = server.cpu_seconds(), time.perf_counter()
        latencies, written = send_batches(client, payloads, end, form)
        wall = time.perf_counter() - t0
        cpu1 = server.cpu_seconds()
    return {
        "batches": len(latencies),
        "points": written,
        "seconds": rounded(wall),
        "points_per_s": round(written / wall) if wall else None,
        "batch_latency": latency_summary(latencies),
        "server_cpu_s": rounded(cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None,
        "truncated": len(latencies) < len(payloads),
    }


def _ingest_concurrent(
    server: Server, sizes: Sizes, deadline: Deadline, make: BatchMaker, form: str
) -> dict[str, Any]:
    rng = random.Random(2)
    n_clients = sizes.concurrent_clients
    per_client = max(1, sizes.ingest_batches // n_clients)
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(client_for(server)) for _ in range(n_clients)]
        work = [
            make(start_run(c, f"ingest-{form}-concurrent-{i}"), per_client, rng, METRIC_KEYS)
            for i, c in enumerate(clients)
        ]
        log(f"logMetrics ({form}): {n_clients} clients x {per_client} batches of {BATCH_SIZE}")
        end = deadline.budget(90)
        barrier = threading.Barrier(n_clients + 1)
        results: list[tuple[list[float], int] | BaseException | None] = [None] * n_clients

        def worker(i: int) -> None:
            barrier.wait()
            try:
                results[i] = send_batches(clients[i], work[i], end, form)
            except BaseException as exc:  # reported below
                results[i] = exc

        threads = [
            threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n_clients)
        ]
        for t in threads:
            t.start()
        cpu0 = server.cpu_seconds()
        barrier.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join(timeout=max(1.0, end - time.monotonic() + 70))
        wall = time.perf_counter() - t0
        cpu1 = server.cpu_seconds()
    failures = [r for r in results if not isinstance(r, tuple)]
    if failures:
        raise BenchError(f"concurrent logMetrics ({form}) failed: {failures[0]!r}")
    all_latencies = [x for r in results if isinstance(r, tuple) for x in r[0]]
    written = sum(r[1] for r in results if isinstance(r, tuple))
    return {
        "clients": n_clients,
        "batches": len(all_latencies),
        "points": written,
        "seconds": rounded(wall),
        "points_per_s": round(written / wall) if wall else None,
        "batch_latency": latency_summary(all_latencies),
        "server_cpu_s": rounded(cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None,
        "truncated": len(all_latencies) < per_client * n_clients,
    }


def bench_log_metrics(
    server: Server, sizes: Sizes, deadline: Deadline, shared: dict[str, Any]
) -> dict[str, Any]:
    """Both request forms carry the same points: 1,000 per call, 5 keys at 200 steps.
    The runs are fresh for each measurement; the forms run one after the other, so the
    series measurements see a metric table already holding the points-form rows."""
    n = sizes.concurrent_clients
    out: dict[str, Any] = {
        "batch_size": BATCH_SIZE,
        "points_form": f"points: [{{key, value, step, timestamp}}] x {BATCH_SIZE}",
        "series_form": (
            f"series: [{{key, values, steps, timestamps}}] x {len(METRIC_KEYS)} keys, "
            f"{SERIES_PER_KEY} values each"
        ),
        "mlflow_log_batch_form": (
            f"MLflow REST {MLFLOW_LOG_BATCH}: metrics: [{{key, value, timestamp, step}}] "
            f"x {BATCH_SIZE} (what MlflowClient.log_batch sends)"
        ),
    }
    # A failing measurement is reported and the others still run; the ones already made
    # are kept when the server dies or the time runs out (then the rest are skipped).
    measurements = [
        (f"{prefix}{name}", measure, make, form)
        for prefix, make, form in (
            ("", metric_batches, "points"),
            ("series_", series_batches, "series"),
            ("mlflow_log_batch_", mlflow_batches, "mlflow"),
        )
        for name, measure in (
            ("single_client", _ingest_single),
            (f"concurrent_{n}_clients", _ingest_concurrent),
        )
    ]
    failures: list[tuple[str, Exception]] = []
    for name, measure, make, form in measurements:
        try:
            out[name] = measure(server, sizes, deadline, make, form)
        except Exception as exc:
            failures.append((name, exc))
            log(f"logMetrics.{name} failed: {type(exc).__name__}: {exc}")
            dead = server.proc is not None and server.proc.poll() is not None
            if dead or (isinstance(exc, BenchError) and "global time limit" in str(exc)):
                break
    if failures and not any(name in out for name, *_ in measurements):
        raise failures[0][1]  # nothing measured: the section failed
    for name, exc in failures:
        shared.setdefault("errors", []).append(
            {"section": f"logMetrics.{name}", "error": f"{type(exc).__name__}: {exc}"}
        )
    return out


@dataclass
class SeededRun:
    id: str
    start_time: datetime
    last: dict[str, float]
    min: dict[str, float]
    max: dict[str, float]


RowsSink = Callable[[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]], None]


async def _seed_runs(
    database_url: str,
    n_runs: int,
    seed: int,
    analyze: bool,
    *,
    experiment: str = EXPERIMENT,
    on_chunk: RowsSink | None = None,
    chunk_runs: int = 5000,
) -> list[SeededRun]:
    """Bulk-insert n_runs FINISHED runs with SEED_STEPS points of each metric into the
    app's tables (history, and the latest_metric summary log_metrics would keep), in one
    transaction, made and inserted `chunk_runs` runs at a time (memory stays bounded at
    100,000 runs). `on_chunk(run_rows, metric_rows, latest_rows)` sees every chunk's rows
    (scripts/bench_vs_mlflow.py writes the same runs into MLflow's tables).

    On PostgreSQL, `analyze` runs ANALYZE afterwards: autovacuum would, some time after a
    bulk load; until it does, the planner has no statistics for the new rows."""
    from sqlalchemy import insert, text

    from app.db import Database
    from app.tracking import service as tracking_service
    from app.tracking.models import LatestMetric, Metric, Run, RunStatus

    rng = random.Random(seed)
    db = Database(database_url)
    try:
        async with db.unit_of_work() as session:
            found = await tracking_service.ensure_experiment(session, name=experiment, actor=ACTOR)
            experiment_id = found.id
        base = datetime.now(UTC) - timedelta(seconds=n_runs + 3600)
        base_ms = int(base.timestamp() * 1000)
        runs: list[SeededRun] = []
        insert_chunk = 5000
        async with db.unit_of_work() as session:
            for first in range(0, n_runs, chunk_runs):
                run_rows, metric_rows, latest_rows = [], [], []
                for i in range(first, min(n_runs, first + chunk_runs)):
                    run_id = uuid.uuid4().hex
                    start = base + timedelta(seconds=i)
                    run_rows.append(
                        {
                            "id": run_id,
                            "experiment_id": experiment_id,
                            "name": f"seed-{i:05d}",
                            "status": RunStatus.FINISHED.value,
                            "start_time": start,
                            "end_time": start + timedelta(seconds=1),
                        }
                    )
                    seeded = SeededRun(run_id, start, {}, {}, {})
                    for key in METRIC_KEYS:
                        lo, hi = METRIC_RANGES[key]
                        values = [lo + (hi - lo) * rng.random() for _ in range(SEED_STEPS)]
                        for step, value in enumerate(values):
                            metric_rows.append(
                                {
                                    "run_id": run_id,
                                    "key": key,
                                    "value": value,
                                    "is_nan": False,
                                    "step": step,
                                    "timestamp": base_ms + i * 1000 + step,
                                }
                            )
                        seeded.last[key], seeded.min[key], seeded.max[key] = (
                            values[-1],
                            min(values),
                            max(values),
                        )
                        latest_rows.append(
                            {
                                "run_id": run_id,
                                "key": key,
                                "experiment_id": experiment_id,
                                "value": values[-1],
                                "is_nan": False,
                                "step": SEED_STEPS - 1,
                                "timestamp": base_ms + i * 1000 + SEED_STEPS - 1,
                                "min_value": min(values),
                                "max_value": max(values),
                            }
                        )
                    runs.append(seeded)
                for table, rows in (
                    (Run.__table__, run_rows),
                    (Metric.__table__, metric_rows),
                    (LatestMetric.__table__, latest_rows),
                ):
                    for k in range(0, len(rows), insert_chunk):
                        await session.execute(insert(table), rows[k : k + insert_chunk])
                if on_chunk is not None:
                    on_chunk(run_rows, metric_rows, latest_rows)
        if analyze and db.dialect == "postgresql":
            async with db.unit_of_work() as session:
                for table_name in ("run", "latest_metric", "metric"):
                    await session.execute(text(f"ANALYZE {table_name}"))
        return runs
    finally:
        await db.dispose()


def expected_best(
    runs: list[SeededRun],
    metric: str,
    aggregate: str,
    predicate: Callable[[SeededRun], bool] = lambda r: True,
) -> str | None:
    """The app's rule: best value (MAXIMIZE), ties to the earlier start, then the lower id."""
    pick = {"LAST": lambda r: r.last, "MIN": lambda r: r.min, "MAX": lambda r: r.max}[aggregate]
    candidates = [r for r in runs if predicate(r)]
    if not candidates:
        return None
    return min(candidates, key=lambda r: (-pick(r)[metric], r.start_time, r.id)).id


def bench_best_run(
    server: Server, sizes: Sizes, deadline: Deadline, shared: dict[str, Any]
) -> dict[str, Any]:
    log(f"bestRun: seeding {sizes.seed_runs} runs x {len(METRIC_KEYS)} metrics")
    postgres = server.database_url.startswith("postgresql")
    analyze = postgres and sizes.analyze_postgres
    t0 = time.perf_counter()
    runs = asyncio.run(_seed_runs(server.database_url, sizes.seed_runs, seed=2, analyze=analyze))
    seed_s = time.perf_counter() - t0
    variants = {
        "last_maximize": (
            {"metric": "accuracy", "goal": "MAXIMIZE", "aggregate": "LAST", "filter": None},
            expected_best(runs, "accuracy", "LAST"),
        ),
        "aggregate_max": (
            {"metric": "accuracy", "goal": "MAXIMIZE", "aggregate": "MAX", "filter": None},
            expected_best(runs, "accuracy", "MAX"),
        ),
        "filter_loss_lt_0_5": (
            {
                "metric": "accuracy",
                "goal": "MAXIMIZE",
                "aggregate": "LAST",
                "filter": {"metrics": [{"metric": "loss", "op": "LT", "value": 0.5}]},
            },
            expected_best(runs, "accuracy", "LAST", lambda r: r.last["loss"] < 0.5),
        ),
    }
    out: dict[str, Any] = {
        "experiment_runs": sizes.seed_runs,
        "metrics_per_run": len(METRIC_KEYS),
        "points_per_metric": SEED_STEPS,
        "seed_method": "bulk Core INSERT of run, metric and latest_metric rows in one transaction",
        "seed_seconds": rounded(seed_s),
        "analyzed_after_seed": analyze,
        "variants": {},
    }
    with client_for(server) as client:
        for name, (args, want) in variants.items():
            payload = body(BEST_RUN, {"experiment": EXPERIMENT, **args})
            for _ in range(5):  # warm-up: connections, statement cache
                post(client, payload)
            end = deadline.budget(40)
            latencies: list[float] = []
            got = None
            for _ in range(sizes.best_run_queries):
                if time.monotonic() > end:
                    break
                elapsed, data, _ = post(client, payload)
                latencies.append(elapsed)
                got = (data["bestRun"] or {}).get("id")
            out["variants"][name] = {
                "query": args,
                **latency_summary(latencies),
                "truncated": len(latencies) < sizes.best_run_queries,
                "answer_verified": got == want,
            }
            if got != want:
                out["variants"][name]["expected_id"] = want
                out["variants"][name]["got_id"] = got
            log(f"bestRun {name}: p50 {out['variants'][name]['p50_ms']} ms")
    return out


HISTORY_KEY = "loss"


def history_run(
    server: Server, sizes: Sizes, deadline: Deadline, shared: dict[str, Any]
) -> dict[str, Any]:
    """The run both history reads fetch: sizes.history_points points of HISTORY_KEY,
    steps 0..n-1, logged once (points form) and shared by metricHistory and metricSeries."""
    if "history_run" in shared:
        return dict(shared["history_run"])
    n_points = sizes.history_points
    rng_seed, base_ms = 3, int(time.time() * 1000)
    with client_for(server) as client:
        run_id = start_run(client, "history")
        batches = metric_batches(
            run_id, n_points // BATCH_SIZE, random.Random(rng_seed), (HISTORY_KEY,), 0, base_ms
        )
        log(f"history: logging {n_points} points of one key")
        _, written = send_batches(client, batches, deadline.budget(60))
    if written != n_points:
        raise BenchError(f"history run got {written} of {n_points} points")
    # metric_batches draws one rng.random() per point, in step order.
    rng = random.Random(rng_seed)
    expected = {
        "steps": list(range(n_points)),
        "values": [rng.random() for _ in range(n_points)],
        "timestamps": [base_ms + step for step in range(n_points)],
    }
    shared["history_run"] = {"run_id": run_id, "expected": expected}
    return dict(shared["history_run"])


def _fetch_repeatedly(
    client: Client, payload: bytes, fetches: int, end: float
) -> tuple[list[float], list[float], dict[str, Any] | None, int]:
    """(round-trip latencies, client decode times, the last answer, its size in bytes)."""
    post_read(client, payload)  # warm-up
    latencies: list[float] = []
    decodes: list[float] = []
    data: dict[str, Any] | None = None
    size = 0
    for _ in range(fetches):
        if time.monotonic() > end:
            break
        elapsed, decode, data, size = post_read(client, payload)
        latencies.append(elapsed)
        decodes.append(decode)
    return latencies, decodes, data, size


def _read_result(
    n_points: int,
    query: str,
    latencies: list[float],
    decodes: list[float],
    size: int,
    fetches: int,
    mismatch: str | None,
) -> dict[str, Any]:
    if mismatch:
        raise BenchError(mismatch)
    return {
        "points": n_points,
        "query": " ".join(query.split()),
        "response_bytes": size,
        **latency_summary(latencies),
        "client_json_decode_p50_ms": rounded(percentile([d * 1000 for d in decodes], 50)),
        "truncated": len(latencies) < fetches,
        "answer_verified": True,
    }


def bench_history(
    server: Server, sizes: Sizes, deadline: Deadline, shared: dict[str, Any]
) -> dict[str, Any]:
    n_points = sizes.history_points
    hist = history_run(server, sizes, deadline, shared)
    payload = body(HISTORY, {"id": hist["run_id"], "key": HISTORY_KEY, "first": n_points})
    log(f"metricHistory: fetching {n_points} points, {sizes.history_fetches} times")
    with client_for(server) as client:
        latencies, decodes, data, size = _fetch_repeatedly(
            client, payload, sizes.history_fetches, deadline.budget(45)
        )
    nodes = (data or {}).get("run", {}).get("metricHistory", {}).get("nodes", [])
    want = hist["expected"]
    got = {
        "steps": [n["step"] for n in nodes],
        "values": [n["value"] for n in nodes],
        "timestamps": [n["timestamp"] for n in nodes],
    }
    mismatch = None
    if len(nodes) != n_points:
        mismatch = f"metricHistory returned {len(nodes)} nodes, expected {n_points}"
    elif got != want:
        mismatch = "metricHistory returned other points than were logged"
    return _read_result(
        n_points, HISTORY, latencies, decodes, size, sizes.history_fetches, mismatch
    )


COLUMNS = ("steps", "values", "timestamps")


def _bench_series_form(
    server: Server,
    sizes: Sizes,
    deadline: Deadline,
    shared: dict[str, Any],
    query: str,
    label: str,
    columns_of: Callable[[dict[str, Any]], dict[str, list[Any]]],
) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Fetch the history run's page with `query` repeatedly, take the last answer's columns
    with `columns_of` and check them against what was logged; (the result, the columns)."""
    n_points = sizes.history_points
    hist = history_run(server, sizes, deadline, shared)
    payload = body(query, {"id": hist["run_id"], "key": HISTORY_KEY, "first": n_points})
    log(f"{label}: fetching {n_points} points, {sizes.history_fetches} times")
    with client_for(server) as client:
        latencies, decodes, data, size = _fetch_repeatedly(
            client, payload, sizes.history_fetches, deadline.budget(45)
        )
    series = (data or {}).get("run", {}).get("metricSeries", {})
    columns = columns_of(series)
    want = hist["expected"]
    lengths = {name: len(column) for name, column in columns.items()}
    mismatch = None
    if any(n != n_points for n in lengths.values()):
        mismatch = f"{label} returned columns of {lengths}, expected {n_points} each"
    elif series.get("key") != HISTORY_KEY or series.get("pageInfo", {}).get("hasNextPage"):
        mismatch = f"{label}: key {series.get('key')!r}, pageInfo {series.get('pageInfo')}"
    elif any(columns[name] != want[name] for name in COLUMNS):
        mismatch = f"{label} returned other points than were logged"
    result = _read_result(
        n_points, query, latencies, decodes, size, sizes.history_fetches, mismatch
    )
    return result, columns


def bench_series(
    server: Server, sizes: Sizes, deadline: Deadline, shared: dict[str, Any]
) -> dict[str, Any]:
    result, columns = _bench_series_form(
        server,
        sizes,
        deadline,
        shared,
        SERIES,
        "metricSeries",
        lambda series: {name: series.get(name) or [] for name in COLUMNS},
    )
    result["array_lengths"] = {name: len(column) for name, column in columns.items()}
    return result


def unpack_column(packed: str, typecode: str) -> list[Any]:
    """An Int64Array ("q") or Float64Array ("d") answer as a list, as a client decodes it."""
    raw = base64.b64decode(packed)
    column = array.array(typecode, raw)
    if sys.byteorder != "little":
        column.byteswap()
    return column.tolist()


def bench_series_packed(
    server: Server, sizes: Sizes, deadline: Deadline, shared: dict[str, Any]
) -> dict[str, Any]:
    """metricSeries { packed { steps values timestamps } }: the same page as one base64
    string per column, unpacked and checked as a client would."""
    unpack_s: list[float] = []

    def unpacked(series: dict[str, Any]) -> dict[str, list[Any]]:
        packed = series.get("packed") or {}
        started = time.perf_counter()
        columns = {
            name: unpack_column(packed.get(name, ""), "d" if name == "values" else "q")
            for name in COLUMNS
        }
        unpack_s.append(time.perf_counter() - started)
        return columns

    result, _ = _bench_series_form(
        server, sizes, deadline, shared, SERIES_PACKED, "metricSeries packed", unpacked
    )
    result["client_unpack_ms"] = rounded(unpack_s[0] * 1000)
    return result


def bench_transitions(
    server: Server, sizes: Sizes, deadline: Deadline, shared: dict[str, Any]
) -> dict[str, Any]:
    with client_for(server) as client:
        for v in range(3):
            _, data, _ = post(
                client, body(REGISTER, {"input": {"model": MODEL, "source": f"s3://bench/{v}"}})
            )
            expect_success(data["registerModelVersion"], "RegisterModelVersionSuccess")
        stages = ["STAGING", "DEVELOPMENT"]
        payloads = [
            body(TRANSITION, {"input": {"model": MODEL, "version": 1, "stage": s}}) for s in stages
        ]
        for i in range(4):  # warm-up, ends back in DEVELOPMENT
            post(client, payloads[i % 2])
        end = deadline.budget(45)
        latencies: list[float] = []
        for i in range(sizes.transitions):
            if time.monotonic() > end:
                break
            elapsed, data, _ = post(client, payloads[i % 2])
            result = expect_success(data["transitionModelVersion"], "TransitionModelVersionSuccess")
            if result["modelVersion"]["stage"] != stages[i % 2]:
                raise BenchError(f"transition {i} left stage {result['modelVersion']['stage']}")
            latencies.append(elapsed)
    return {
        "moves": "version 1: DEVELOPMENT -> STAGING -> DEVELOPMENT ...",
        **latency_summary(latencies),
        "truncated": len(latencies) < sizes.transitions,
    }


# ---------------------------------------------------------------- machine


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def versions() -> dict[str, str]:
    return package_versions(
        (
            "strawberry-graphql",
            "graphql-core",
            "starlette",
            "uvicorn",
            "SQLAlchemy",
            "aiosqlite",
            "asyncpg",
            "httpx",
        )
    )


def mlflow_block(result: dict[str, Any]) -> dict[str, Any]:
    ingest = result.get("logMetrics", {})

    def ingest_rate(prefix: str, concurrent: bool) -> float | None:
        """points_per_s of `{prefix}single_client` or `{prefix}concurrent_N_clients`."""
        for name, block in ingest.items():
            if not isinstance(block, dict):
                continue
            if concurrent:
                match = name.startswith(f"{prefix}concurrent_")
            else:
                match = name == f"{prefix}single_client"
            if match:
                return block.get("points_per_s")
        return None

    single, concurrent = ingest_rate("", False), ingest_rate("", True)
    series_single, series_concurrent = ingest_rate("series_", False), ingest_rate("series_", True)
    best = result.get("bestRun", {}).get("variants", {}).get("last_maximize", {}).get("p50_ms")
    history = result.get("metricHistory", {}).get("p50_ms")
    history_points = result.get("metricHistory", {}).get("points")
    series = result.get("metricSeries", {}).get("p50_ms")
    series_points = result.get("metricSeries", {}).get("points")
    packed = result.get("metricSeriesPacked", {}).get("p50_ms")
    mlflow_points_per_s = MLFLOW["logMetrics_points_per_s"]
    mlflow_history_ms = MLFLOW["metricHistory_10k_points_ms"]
    not_10k = [
        name
        for name, points in (("metricHistory", history_points), ("metricSeries", series_points))
        if points is not None and points != 10_000
    ]
    return {
        **MLFLOW,
        "ours": {
            "logMetrics_points_per_s_1_client": single,
            "logMetrics_points_per_s_concurrent": concurrent,
            "logMetrics_series_points_per_s_1_client": series_single,
            "logMetrics_series_points_per_s_concurrent": series_concurrent,
            "bestRun_p50_ms": best,
            "bestRun_runs": result.get("bestRun", {}).get("experiment_runs"),
            "metricHistory_p50_ms": history,
            "metricHistory_points": history_points,
            "metricSeries_p50_ms": series,
            "metricSeries_points": series_points,
            "metricSeriesPacked_p50_ms": packed,
        },
        "ratios": {
            "logMetrics_throughput_ours_over_mlflow_1_client": ratio(single, mlflow_points_per_s),
            "logMetrics_throughput_ours_over_mlflow_concurrent": ratio(
                concurrent, mlflow_points_per_s
            ),
            "logMetrics_series_throughput_ours_over_mlflow_1_client": ratio(
                series_single, mlflow_points_per_s
            ),
            "logMetrics_series_throughput_ours_over_mlflow_concurrent": ratio(
                series_concurrent, mlflow_points_per_s
            ),
            "bestRun_mlflow_ms_over_ours_ms": ratio(MLFLOW["bestRun_ms"], best),
            "metricHistory_mlflow_ms_over_ours_ms": ratio(mlflow_history_ms, history),
            "metricSeries_mlflow_ms_over_ours_ms": ratio(mlflow_history_ms, series),
            "metricSeriesPacked_mlflow_ms_over_ours_ms": ratio(mlflow_history_ms, packed),
        },
        "notes": [
            "ratios > 1 mean modelgraph is faster",
            "MLflow's best-run figure is over 5,000 runs; ours is over bestRun.experiment_runs",
            "the MLflow figures were not measured by this script",
            "the series ratios compare our columnar forms (logMetrics series, metricSeries) "
            "with MLflow's figures for its own batch logging and metric-history reads",
        ]
        + (
            [f"{' and '.join(not_10k)} here are not 10,000 points (--quick): ratio not comparable"]
            if not_10k
            else []
        ),
    }


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--database-url",
        help="postgresql+asyncpg://...@127.0.0.1:5432/test (its public schema is reset); "
        "default: a fresh SQLite file in a temporary directory",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--no-analyze",
        action="store_true",
        help="PostgreSQL: do not ANALYZE after the bulk seed (the planner then has no "
        "statistics for the seeded rows, as right after a bulk import)",
    )
    parser.add_argument(
        "--time-limit", type=float, default=280.0, help="seconds for the whole run (default 280)"
    )
    parser.add_argument(
        "--artifacts",
        action="store_true",
        help="measure artifact upload and download (MB/s, server RSS) instead",
    )
    parser.add_argument(
        "--artifact-mb", type=int, default=256, help="--artifacts: the file's size in MB"
    )
    return parser.parse_args(argv)


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@contextlib.contextmanager
def rss_peak(pid: int, interval: float = 0.02) -> Iterator[dict[str, int | None]]:
    """The highest VmRSS (KiB) seen while the block runs, in the dict yielded."""
    seen: dict[str, int | None] = {"peak_kb": rss_kb(pid), "samples": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(interval):
            now = rss_kb(pid)
            if now is not None and (seen["peak_kb"] or 0) < now:
                seen["peak_kb"] = now
            seen["samples"] = (seen["samples"] or 0) + 1

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()


def bench_artifacts(server: Server, tmp: Path, megabytes: int) -> dict[str, Any]:
    from app.client import Artifacts, sha256_file

    assert server.proc is not None
    pid = server.proc.pid
    size = megabytes * 1024 * 1024
    source, back = tmp / "artifact.bin", tmp / "artifact.back"
    log(f"writing a {megabytes} MB file")
    block = os.urandom(16 * 1024 * 1024)
    with source.open("wb") as f:
        for offset in range(0, size, len(block)):
            f.write(block[: min(len(block), size - offset)])
    mb = size / 1e6
    with server.client() as graphql:
        run_id = start_run(graphql, "artifacts")
    token = os.environ.get(TOKEN_ENV)
    with Artifacts(server.base_url, token=token, trust_env=False) as transfers:
        # A small transfer first, so the baseline includes whatever the first one loads.
        (tmp / "warm.bin").write_bytes(b"warm")
        transfers.upload_run_file(run_id, "warm.bin", tmp / "warm.bin")
        before = rss_kb(pid)
        t = time.perf_counter()
        digest, _ = sha256_file(source)
        hash_s = time.perf_counter() - t
        log("uploading")
        with rss_peak(pid) as up_rss:
            t = time.perf_counter()
            stored = transfers.upload_run_file(run_id, "model/big.bin", source, declare=False)
            up_s = time.perf_counter() - t
        if stored.digest != digest:
            raise BenchError("the server stored other bytes than the file's")
        log("downloading")
        with rss_peak(pid) as down_rss:
            t = time.perf_counter()
            got = transfers.download_run_file(run_id, "model/big.bin", back, expected=digest)
            down_s = time.perf_counter() - t
        after = rss_kb(pid)
    if got.size != size:
        raise BenchError("the download is not the file")

    def mib(kb: int | None) -> float | None:
        return None if kb is None else round(kb / 1024, 1)

    return {
        "file_mb": megabytes,
        "store": "local folder",
        "client_sha256_mb_s": rounded(mb / hash_s, 1),
        "upload_mb_s": rounded(mb / up_s, 1),
        "upload_s": rounded(up_s, 2),
        "download_verified_mb_s": rounded(mb / down_s, 1),
        "download_s": rounded(down_s, 2),
        "server_rss_mib": {
            "before": mib(before),
            "peak_during_upload": mib(up_rss["peak_kb"]),
            "peak_during_download": mib(down_rss["peak_kb"]),
            "after": mib(after),
            "samples": (up_rss["samples"], down_rss["samples"]),
        },
        "note": "upload: the HTTP transfer (the server hashes and stores); the client's "
        "first hashing pass is client_sha256_mb_s. download: to a file, every byte "
        "hashed and checked against the digest (the server checks each 4 MiB chunk too)",
    }


def artifacts_main(args: argparse.Namespace) -> int:
    if args.database_url:
        check_postgres_url(args.database_url)
    tmp = Path(tempfile.mkdtemp(prefix="modelgraph-bench-"))
    database_url = args.database_url or f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    server = Server(database_url, tmp / "server.log", error=BenchError)
    server.env["MODELGRAPH_ARTIFACT_STORE"] = (tmp / "store").as_uri()
    result: dict[str, Any] = {
        "benchmark": "modelgraph scripts/bench.py --artifacts",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "database": "postgresql" if args.database_url else "sqlite",
    }
    errors: list[str] = []
    with exit_on_sigterm():
        try:
            if args.database_url:
                asyncio.run(reset_postgres(database_url))
            server.start()
            result["artifacts"] = bench_artifacts(server, tmp, args.artifact_mb)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            log(traceback.format_exc())
        finally:
            server.stop()
            if errors:
                result["server_log_tail"] = server.log_tail()
            if not args.keep:
                shutil.rmtree(tmp, ignore_errors=True)
    result["errors"] = errors
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.artifacts:
        return artifacts_main(args)
    sizes = dataclasses.replace(QUICK if args.quick else FULL, analyze_postgres=not args.no_analyze)
    deadline = Deadline(args.time_limit, BenchError)
    started = time.monotonic()
    if args.database_url:
        check_postgres_url(args.database_url)
    tmp = Path(tempfile.mkdtemp(prefix="modelgraph-bench-"))
    if args.database_url:
        database_url, sqlite_path = args.database_url, None
    else:
        sqlite_path = tmp / "bench.db"
        database_url = f"sqlite+aiosqlite:///{sqlite_path}"
    result: dict[str, Any] = {
        "benchmark": "modelgraph scripts/bench.py",
        "mode": "quick" if args.quick else "full",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "server": {
            "database": "postgresql" if args.database_url else "sqlite",
            "database_url": database_url.split("@")[-1] if args.database_url else database_url,
            "sqlite_path": str(sqlite_path) if sqlite_path else None,
            "kept": bool(args.keep),
            "command": "python -m app serve --host 127.0.0.1 --port <free port>",
            "log_level": "warning",
            "workers": 1,
        },
        "sizes": dataclasses.asdict(sizes),
    }
    errors: list[dict[str, str]] = []
    # Handed from section to section: the history run; errors of sub-measurements.
    shared: dict[str, Any] = {}
    interrupted: int | str | None = None
    server = Server(database_url, tmp / "server.log", error=BenchError)
    with exit_on_sigterm():
        try:
            if args.database_url:
                log("resetting the PostgreSQL test schema")
                asyncio.run(reset_postgres(database_url))
            log(f"starting the server on {server.base_url}")
            server.start()
            result["server"]["url"] = server.base_url
            result["server"]["startup_s"] = rounded(server.startup_s)
            sections: list[tuple[str, Section]] = [
                ("logMetrics", bench_log_metrics),
                ("bestRun", bench_best_run),
                ("metricHistory", bench_history),
                ("metricSeries", bench_series),
                ("metricSeriesPacked", bench_series_packed),
                ("transitionModelVersion", bench_transitions),
            ]
            for name, section in sections:
                try:
                    result[name] = section(server, sizes, deadline, shared)
                except Exception as exc:  # keep going: report what could be measured
                    errors.append({"section": name, "error": f"{type(exc).__name__}: {exc}"})
                    log(f"{name} failed:\n{traceback.format_exc()}")
                    if server.proc is not None and server.proc.poll() is not None:
                        break
                finally:
                    errors.extend(shared.pop("errors", []))
            for name, variant in result.get("bestRun", {}).get("variants", {}).items():
                if not variant.get("answer_verified"):
                    errors.append(
                        {"section": "bestRun", "error": f"{name}: the server chose another run"}
                    )
            result["counts"] = counts(sizes, result)
        except Exception as exc:
            errors.append({"section": "setup", "error": f"{type(exc).__name__}: {exc}"})
            log(traceback.format_exc())
        except (KeyboardInterrupt, SystemExit) as exc:
            interrupted = exc.code if isinstance(exc, SystemExit) else 130
            errors.append({"section": "run", "error": f"interrupted ({type(exc).__name__})"})
            log("interrupted; stopping the server")
        finally:
            server.stop()
            code = server.returncode
            result["server"]["exit_code"] = code
            if errors:
                result["server"]["log_tail"] = server.log_tail()
            if not args.keep:
                shutil.rmtree(tmp, ignore_errors=True)
    result["mlflow_reference"] = mlflow_block(result)
    result["errors"] = errors
    result["duration_s"] = rounded(time.monotonic() - started, 1)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    if interrupted is not None:
        return interrupted if isinstance(interrupted, int) else 1
    return 1 if errors else 0


def counts(sizes: Sizes, result: dict[str, Any]) -> dict[str, Any]:
    ingest = result.get("logMetrics", {})
    blocks = {k: v for k, v in ingest.items() if isinstance(v, dict)}
    ingested = sum(v.get("points", 0) for v in blocks.values())
    as_series = sum(v.get("points", 0) for k, v in blocks.items() if k.startswith("series_"))
    return {
        "seeded_runs": sizes.seed_runs,
        "seeded_metric_rows": sizes.seed_runs * len(METRIC_KEYS) * SEED_STEPS,
        "seeded_latest_metric_rows": sizes.seed_runs * len(METRIC_KEYS),
        "points_ingested_over_http_measured": ingested,
        "of_which_series_form": as_series,
        "history_points": result.get("metricHistory", {}).get("points"),
        "transitions": result.get("transitionModelVersion", {}).get("n"),
    }


if __name__ == "__main__":
    sys.exit(main())
