"""modelgraph and MLflow 3.17.2 side by side on this machine, in one run; prints a table
and one JSON object, writes docs/BENCHMARKS.md and docs/benchmarks.png.

    scripts/bench --vs-mlflow [--quick] [--time-limit SECONDS] [--no-docs] [--keep]
                              [--mlflow-big] [--json PATH] [--from-json PATH]

Starts a real MLflow 3.17.2 server (`mlflow server --workers 1`, SQLite backend file in a
temporary folder, MLflow's default artifact proxying into that folder, the background job
runner off) from the environment scripts/mlflow-env makes once under the cache folder, and
modelgraph (`python -m app serve`, one process, SQLite, durability and authentication on,
as in production), both on free 127.0.0.1 ports. Both are driven with the same workload
over the same HTTP client library (httpx, keep-alive): MLflow's REST API exactly as
MlflowClient sends it, modelgraph's GraphQL and its MLflow face.

  1. ingest, 1,000-point batches, per-point form: MLflow `runs/log-batch` vs modelgraph
     `logMetrics(points)` and the MLflow face's `runs/log-batch`; points/s, one client;
  2. ingest, columnar `logMetrics(series)` (modelgraph only); points/s;
  3. best run over the same seeded runs (5,000; 100,000 in modelgraph, and in MLflow
     too with --mlflow-big, one query: it takes minutes there): MLflow
     `runs/search` (order_by metrics.accuracy DESC, max_results 1) vs `bestRun`; p50 ms.
     The runs are written straight into each server's SQLite with its own schema (the
     same run ids, values, steps and timestamps in both), and both answers are checked
     against the best run computed here;
  4. one metric's 10,000-point history: MLflow `metrics/get-history` (max_results) vs
     `metricHistory` (objects) and `metricSeries` (JSON columns, and packed columns:
     one base64 string per column, unpacked by the client); p50 ms, answers checked;
  5. register a version: `model-versions/create` vs `registerModelVersion`; p50 ms;
  6. move a STAGING version to PRODUCTION, archiving the one there: MLflow
     `transition-stage` (archive_existing_versions) vs `transitionModelVersion` under a
     PRODUCTION promotion policy (metric rule checked, event and audit written); p50 ms;
  7. a simple read, `experiment(name) { id name }` vs `experiments/get-by-name`, with 1, 4
     and 8 concurrent clients; requests/s;
  8. the load mix of scripts/load.py (8 writers, 50 readers; modelgraph only, on a fresh
     server): requests/s, server CPU per request, errors;
  9. one promotion -> N watchers (scripts/watch_latency.py in a subprocess, its own
     server; modelgraph only: MLflow has no event stream); p50/p99 ms.

Per server: RSS (VmRSS now and VmHWM, the peak, summed over the process tree: MLflow's
`mlflow server` runs uvicorn as a child) and CPU seconds per request (utime+stime deltas
from /proc over the tree, per figure). Progress goes to stderr; the table and then the
JSON to stdout. Both servers are always stopped, also on errors, SIGINT and SIGTERM; every
loop is bounded in count and time; all traffic stays on 127.0.0.1.

The text between `<!-- profiles -->` and `<!-- /profiles -->` in docs/BENCHMARKS.md is
kept when the file is written again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench
import httpx
from _harness import (
    REGISTER,
    ROOT,
    TOKEN_ENV,
    Deadline,
    Server,
    admin_token,
    auth_headers,
    clean_env,
    cpu_model,
    exit_on_sigterm,
    logger,
    package_versions,
    python_exe,
    rounded,
    stats_ms,
)

from app.client import Client  # after _harness (it puts the project root on sys.path)
from app.client import encode as body

MLFLOW_VERSION = "3.17.2"
MLFLOW_API = "/api/2.0/mlflow"
DOCS = ROOT / "docs"
PROFILES_START = "<!-- profiles -->"
PROFILES_END = "<!-- /profiles -->"
# The load mix's requests/s in the first measurement; the aim is 3x that.
LOAD_MIX_BASELINE_RPS = 68.6
TIMES = "\N{MULTIPLICATION SIGN}"
EXPERIMENT_BIG = "bench-large"
VS_MODEL = "vs-register"
PROMOTE_MODEL = "vs-promote"

log = logger("bench-vs-mlflow")


class VsError(RuntimeError):
    pass


@dataclass(frozen=True)
class Sizes:
    ingest_batches: int  # 1,000-point batches per form
    seed_runs: int  # best run: runs seeded into both
    big_runs: int  # best run at scale (modelgraph; MLflow too with --mlflow-big)
    best_queries: int
    history_points: int
    history_fetches: int
    registers: int
    transitions: int
    read_seconds: float  # per concurrency level and server
    read_clients: tuple[int, ...]
    load_seconds: float
    watchers: int
    watch_events: int


FULL = Sizes(
    ingest_batches=40,
    seed_runs=5_000,
    big_runs=100_000,
    best_queries=30,
    history_points=10_000,
    history_fetches=15,
    registers=100,
    transitions=40,
    read_seconds=5.0,
    read_clients=(1, 4, 8),
    load_seconds=30.0,
    watchers=1000,
    watch_events=20,
)
QUICK = Sizes(
    ingest_batches=4,
    seed_runs=500,
    big_runs=2_000,
    best_queries=8,
    history_points=2_000,
    history_fetches=4,
    registers=10,
    transitions=6,
    read_seconds=1.0,
    read_clients=(1, 4),
    load_seconds=4.0,
    watchers=50,
    watch_events=3,
)


# ---------------------------------------------------------------- processes (/proc)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_tree(root: int) -> list[int]:
    """`root` and its live descendants (by the parent pid in /proc/<pid>/stat)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _task_cpu_ns(pid: int) -> int | None:
    """On-CPU nanoseconds of every live thread of `pid` (/proc/<pid>/task/*/schedstat):
    nanosecond resolution, where /proc/<pid>/stat counts 10 ms ticks."""
    total, seen = 0, False
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
                seen = True
    return total if seen else None


def tree_cpu_seconds(root: int) -> float | None:
    """CPU seconds of `root` and its live descendants: every live thread's on-CPU time
    (schedstat, ns), plus what reaped children and exited threads left in /proc/<pid>/stat
    (cutime + cstime); utime + stime (ticks) where schedstat is missing."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, seen = 0.0, False
    for pid in process_tree(root):
        fields = _stat_fields(pid)
        if fields is None:
            continue
        seen = True
        ns = _task_cpu_ns(pid)
        if ns is None:
            total += (int(fields[11]) + int(fields[12])) / ticks
        else:
            total += ns / 1e9
        total += (int(fields[13]) + int(fields[14])) / ticks
    return total if seen else None


def tree_memory_mib(root: int) -> dict[str, float | None]:
    """VmRSS (now) and VmHWM (peak) summed over the tree, MiB."""
    rss = hwm = 0
    seen = False
    for pid in process_tree(root):
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
                seen = True
            elif line.startswith("VmHWM:"):
                hwm += int(line.split()[1])
    if not seen:
        return {"rss_mib": None, "peak_rss_mib": None}
    return {"rss_mib": round(rss / 1024, 1), "peak_rss_mib": round(hwm / 1024, 1)}


# ---------------------------------------------------------------- the MLflow server


def mlflow_python() -> str:
    made = subprocess.run(
        [str(ROOT / "scripts" / "mlflow-env")],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if made.returncode != 0:
        raise VsError(f"scripts/mlflow-env failed: {made.stderr.strip()[-2000:]}")
    return made.stdout.strip().splitlines()[-1]


class MlflowServer:
    """`mlflow server --workers 1` on a SQLite file in `folder`, in its own process group."""

    def __init__(self, python: str, folder: Path) -> None:
        from app.client.server import free_port

        self.python = python
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_path = folder / "mlflow.db"
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None
        self.command = [
            python,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.db_path}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]

    def start(self, timeout: float) -> None:
        env = {
            **clean_env(),
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "GIT_PYTHON_REFRESH": "quiet",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        env.pop(TOKEN_ENV, None)
        started = time.monotonic()
        with (self.folder / "mlflow-server.log").open("wb") as out:
            self.proc = subprocess.Popen(
                self.command,
                cwd=self.folder,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its uvicorn child is stopped with it
            )
        end = started + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise VsError(f"mlflow server exited: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=2, trust_env=False).status_code == 200:
                    self.startup_s = time.monotonic() - started
                    return
            time.sleep(0.3)
        raise VsError(f"mlflow server did not answer within {timeout:.0f} s: {self.log_tail()}")

    def cpu_seconds(self) -> float | None:
        return None if self.proc is None else tree_cpu_seconds(self.proc.pid)

    def memory(self) -> dict[str, float | None]:
        if self.proc is None:
            return {"rss_mib": None, "peak_rss_mib": None}
        return tree_memory_mib(self.proc.pid)

    def processes(self) -> int:
        return 0 if self.proc is None else len(process_tree(self.proc.pid))

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            text = (self.folder / "mlflow-server.log").read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)
        # Anything left in its group (the uvicorn child) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.returncode

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url + MLFLOW_API,
            trust_env=False,
            timeout=120.0,
            headers={"Content-Type": "application/json"},
        )


def ml_call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    response = client.request(method, path, **kwargs)
    if response.status_code != 200:
        raise VsError(f"MLflow {path}: HTTP {response.status_code}: {response.text[:300]}")
    out: dict[str, Any] = response.json()
    return out


def ml_timed(client: httpx.Client, method: str, path: str, **kwargs: Any) -> float:
    started = time.perf_counter()
    response = client.request(method, path, **kwargs)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise VsError(f"MLflow {path}: HTTP {response.status_code}: {response.text[:300]}")
    return elapsed


# ---------------------------------------------------------------- metering


@dataclass
class Meter:
    """Server CPU and wall time over a block, and the requests sent in it."""

    cpu: Callable[[], float | None]
    requests: int = 0
    server_cpu_s: float | None = None
    wall_s: float | None = None

    @contextlib.contextmanager
    def run(self) -> Iterator[Meter]:
        c0, t0 = self.cpu(), time.perf_counter()
        try:
            yield self
        finally:
            c1 = self.cpu()
            self.wall_s = time.perf_counter() - t0
            if c0 is not None and c1 is not None:
                self.server_cpu_s = c1 - c0

    def summary(self) -> dict[str, Any]:
        per = (
            self.server_cpu_s * 1000 / self.requests
            if self.server_cpu_s is not None and self.requests
            else None
        )
        return {
            "requests": self.requests,
            "wall_s": rounded(self.wall_s),
            "server_cpu_s": rounded(self.server_cpu_s),
            "server_cpu_ms_per_request": rounded(per),
        }


def latencies_ms(seconds: list[float]) -> dict[str, Any]:
    return stats_ms(seconds, ("p50", "p95", "mean", "min", "max"))


def bench_sizes(sizes: Sizes) -> bench.Sizes:
    return bench.Sizes(
        ingest_batches=sizes.ingest_batches,
        concurrent_clients=1,
        seed_runs=sizes.seed_runs,
        best_run_queries=sizes.best_queries,
        history_points=sizes.history_points,
        history_fetches=sizes.history_fetches,
        transitions=sizes.transitions,
    )


@dataclass
class Ctx:
    mg: Server
    ml: MlflowServer
    sizes: Sizes
    deadline: Deadline
    shared: dict[str, Any] = field(default_factory=dict)
    ml_experiments: dict[str, str] = field(default_factory=dict)

    def mg_cpu(self) -> float | None:
        return None if self.mg.proc is None else tree_cpu_seconds(self.mg.proc.pid)

    def ml_experiment(self, client: httpx.Client, name: str) -> str:
        if name not in self.ml_experiments:
            made = ml_call(client, "POST", "/experiments/create", json={"name": name})
            self.ml_experiments[name] = str(made["experiment_id"])
        return self.ml_experiments[name]

    def ml_run(self, client: httpx.Client, name: str) -> str:
        experiment_id = self.ml_experiment(client, bench.INGEST_EXPERIMENT)
        made = ml_call(
            client,
            "POST",
            "/runs/create",
            json={
                "experiment_id": experiment_id,
                "run_name": name,
                "start_time": int(time.time() * 1000),
            },
        )
        return str(made["run"]["info"]["run_id"])


# ---------------------------------------------------------------- 1, 2: ingest


def ingest(ctx: Ctx) -> dict[str, Any]:
    sizes, bsizes = ctx.sizes, bench_sizes(ctx.sizes)
    out: dict[str, Any] = {"batch_size": bench.BATCH_SIZE, "batches": sizes.ingest_batches}
    # MLflow: log-batch as MlflowClient.log_batch sends it, 1,000 metrics per request.
    rng = random.Random(1)
    with ctx.ml.client() as client:
        warm = bench.mlflow_batches(ctx.ml_run(client, "warmup"), 3, rng, bench.METRIC_KEYS)
        for payload in warm:
            ml_timed(client, "POST", "/runs/log-batch", content=payload)
        payloads = bench.mlflow_batches(
            ctx.ml_run(client, "ingest"), sizes.ingest_batches, rng, bench.METRIC_KEYS
        )
        log(f"MLflow log-batch: {len(payloads)} batches of {bench.BATCH_SIZE}")
        end = ctx.deadline.budget(120)
        meter = Meter(ctx.ml.cpu_seconds)
        latencies: list[float] = []
        with meter.run():
            for payload in payloads:
                if time.monotonic() > end:
                    break
                latencies.append(ml_timed(client, "POST", "/runs/log-batch", content=payload))
                meter.requests += 1
    points = len(latencies) * bench.BATCH_SIZE
    out["mlflow_log_batch"] = {
        "points": points,
        "points_per_s": round(points / meter.wall_s) if meter.wall_s else None,
        "batch_latency": latencies_ms(latencies),
        **meter.summary(),
        "truncated": len(latencies) < len(payloads),
    }
    forms = (
        ("graphql_points", bench.metric_batches, "points"),
        ("graphql_series", bench.series_batches, "series"),
        ("mlflow_face_log_batch", bench.mlflow_batches, "mlflow"),
    )
    for name, make, form in forms:
        log(f"modelgraph {name}: {sizes.ingest_batches} batches of {bench.BATCH_SIZE}")
        got = bench._ingest_single(ctx.mg, bsizes, ctx.deadline, make, form)
        cpu = got.get("server_cpu_s")
        got["requests"] = got["batches"]
        got["server_cpu_ms_per_request"] = (
            rounded(cpu * 1000 / got["batches"]) if cpu is not None and got["batches"] else None
        )
        out[name] = got
    return out


# ---------------------------------------------------------------- 3: best run


def seed_mlflow_runs(
    db_path: Path,
    experiment_id: str,
    run_rows: list[dict[str, Any]],
    metric_rows: list[dict[str, Any]],
    latest_rows: list[dict[str, Any]],
) -> None:
    """Write modelgraph's seeded rows into MLflow's own tables (runs, tags, metrics,
    latest_metrics), as MLflow's SqlAlchemyStore would have stored them."""
    exp = int(experiment_id)

    def ms(value: datetime) -> int:
        return int(value.timestamp() * 1000)

    with contextlib.closing(sqlite3.connect(db_path, timeout=60)) as conn, conn:
        conn.executemany(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name,"
            " user_id, status, start_time, end_time, source_version, lifecycle_stage,"
            " artifact_uri, experiment_id) VALUES (?, ?, 'LOCAL', '', '', 'bench', 'FINISHED',"
            " ?, ?, '', 'active', ?, ?)",
            [
                (
                    r["id"],
                    r["name"],
                    ms(r["start_time"]),
                    ms(r["end_time"]),
                    f"mlflow-artifacts:/{exp}/{r['id']}/artifacts",
                    exp,
                )
                for r in run_rows
            ],
        )
        conn.executemany(
            "INSERT INTO tags (key, value, run_uuid) VALUES ('mlflow.runName', ?, ?)",
            [(r["name"], r["id"]) for r in run_rows],
        )
        conn.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)"
            " VALUES (?, ?, ?, ?, ?, 0)",
            [(m["key"], m["value"], m["timestamp"], m["run_id"], m["step"]) for m in metric_rows],
        )
        conn.executemany(
            "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid)"
            " VALUES (?, ?, ?, ?, 0, ?)",
            [(m["key"], m["value"], m["timestamp"], m["step"], m["run_id"]) for m in latest_rows],
        )


def _mg_best(ctx: Ctx, experiment: str, want: str | None, queries: int) -> dict[str, Any]:
    payload = body(
        bench.BEST_RUN,
        {
            "experiment": experiment,
            "metric": "accuracy",
            "goal": "MAXIMIZE",
            "aggregate": "LAST",
            "filter": None,
        },
    )
    meter = Meter(ctx.mg_cpu)
    latencies: list[float] = []
    got = None
    with ctx.mg.client() as client:
        for _ in range(3):
            bench.post(client, payload)
        end = ctx.deadline.budget(60)
        with meter.run():
            for _ in range(queries):
                if time.monotonic() > end:
                    break
                elapsed, data, _ = bench.post(client, payload)
                latencies.append(elapsed)
                meter.requests += 1
                got = (data["bestRun"] or {}).get("id")
    if got != want:
        raise VsError(f"bestRun over {experiment}: got {got}, expected {want}")
    return {**latencies_ms(latencies), **meter.summary(), "answer_verified": True}


def _ml_best(
    ctx: Ctx, experiment_id: str, want: str | None, queries: int, *, big: bool = False
) -> dict[str, Any]:
    """MLflow's search for the best run. `big`: one query, no warm-up, as long as the
    run's time allows (at 100,000 runs it takes minutes; a timed-out query would keep
    MLflow's single worker busy and its SQLite locked for the figures after it)."""
    request = {
        "experiment_ids": [experiment_id],
        "order_by": ["metrics.accuracy DESC"],
        "max_results": 1,
    }
    meter = Meter(ctx.ml.cpu_seconds)
    latencies: list[float] = []
    got = None
    with ctx.ml.client() as client:
        if big:
            client.timeout = httpx.Timeout(ctx.deadline.cap(900, margin=120))
            queries = 1
        else:
            ml_call(client, "POST", "/runs/search", json=request)  # warm-up
        end = ctx.deadline.budget(90)
        with meter.run():
            for _ in range(queries):
                if time.monotonic() > end:
                    break
                started = time.perf_counter()
                answer = ml_call(client, "POST", "/runs/search", json=request)
                latencies.append(time.perf_counter() - started)
                meter.requests += 1
                got = (answer.get("runs") or [{}])[0].get("info", {}).get("run_id")
    if got != want:
        raise VsError(f"MLflow runs/search: got {got}, expected {want}")
    return {**latencies_ms(latencies), **meter.summary(), "answer_verified": True}


def best_run(ctx: Ctx, mlflow_big: bool) -> dict[str, Any]:
    sizes = ctx.sizes
    out: dict[str, Any] = {
        "query": {"metric": "accuracy", "goal": "MAXIMIZE", "aggregate": "LAST"},
        "mlflow_request": "POST runs/search {experiment_ids, order_by: ['metrics.accuracy DESC'],"
        " max_results: 1}",
        "seed": f"{len(bench.METRIC_KEYS)} metrics x {bench.SEED_STEPS} steps per run; the same"
        " rows bulk-inserted into modelgraph's tables (Core INSERT) and into MLflow's"
        " runs/tags/metrics/latest_metrics tables (sqlite3, MLflow's own schema)",
    }
    with ctx.ml.client() as client:
        exp_small = ctx.ml_experiment(client, bench.EXPERIMENT)
        exp_big = ctx.ml_experiment(client, EXPERIMENT_BIG) if mlflow_big else None

    def to_mlflow(experiment_id: str) -> bench.RowsSink:
        def sink(runs: list[Any], metrics: list[Any], latest: list[Any]) -> None:
            seed_mlflow_runs(ctx.ml.db_path, experiment_id, runs, metrics, latest)

        return sink

    for label, experiment, n_runs, seed, ml_exp in (
        ("runs_small", bench.EXPERIMENT, sizes.seed_runs, 2, exp_small),
        ("runs_big", EXPERIMENT_BIG, sizes.big_runs, 5, exp_big),
    ):
        log(f"best run: seeding {n_runs} runs (experiment {experiment})")
        t0 = time.perf_counter()
        runs = asyncio.run(
            bench._seed_runs(
                ctx.mg.database_url,
                n_runs,
                seed=seed,
                analyze=False,
                experiment=experiment,
                on_chunk=to_mlflow(ml_exp) if ml_exp is not None else None,
            )
        )
        want = bench.expected_best(runs, "accuracy", "LAST")
        block: dict[str, Any] = {
            "runs": n_runs,
            "seed_s": rounded(time.perf_counter() - t0),
            "seeded_into_mlflow": ml_exp is not None,
        }
        log(f"best run over {n_runs}: modelgraph")
        block["modelgraph"] = _mg_best(ctx, experiment, want, sizes.best_queries)
        if ml_exp is not None:
            log(f"best run over {n_runs}: MLflow")
            big = label == "runs_big"
            block["mlflow"] = _ml_best(ctx, ml_exp, want, sizes.best_queries, big=big)
        out[label] = block
        del runs
    return out


# ---------------------------------------------------------------- 4: history


def history(ctx: Ctx) -> dict[str, Any]:
    sizes, bsizes = ctx.sizes, bench_sizes(ctx.sizes)
    n = sizes.history_points
    out: dict[str, Any] = {"points": n}
    log(f"history: modelgraph metricHistory / metricSeries, {n} points")
    bench.history_run(ctx.mg, bsizes, ctx.deadline, ctx.shared)  # logged before the meters
    for name, section in (
        ("metricHistory", bench.bench_history),
        ("metricSeries", bench.bench_series),
        ("metricSeriesPacked", bench.bench_series_packed),
    ):
        meter = Meter(ctx.mg_cpu)
        with meter.run():
            got = section(ctx.mg, bsizes, ctx.deadline, ctx.shared)
        meter.requests = got["n"] + 1  # with the warm-up
        got.update({k: v for k, v in meter.summary().items() if k != "wall_s"})
        out[name] = got
    # MLflow: the same n points of one key, then metrics/get-history with max_results.
    rng_seed, base_ms = 3, int(time.time() * 1000)
    rng = random.Random(rng_seed)
    values = [rng.random() for _ in range(n)]
    with ctx.ml.client() as client:
        run_id = ctx.ml_run(client, "history")
        for first in range(0, n, bench.BATCH_SIZE):
            metrics = [
                {"key": bench.HISTORY_KEY, "value": values[s], "timestamp": base_ms + s, "step": s}
                for s in range(first, min(n, first + bench.BATCH_SIZE))
            ]
            ml_call(client, "POST", "/runs/log-batch", json={"run_id": run_id, "metrics": metrics})
        params = {"run_id": run_id, "metric_key": bench.HISTORY_KEY, "max_results": n}
        log(f"history: MLflow get-history, {n} points")
        answer = ml_call(client, "GET", "/metrics/get-history", params=params)  # warm-up
        meter = Meter(ctx.ml.cpu_seconds)
        latencies: list[float] = []
        size = 0
        end = ctx.deadline.budget(90)
        with meter.run():
            for _ in range(sizes.history_fetches):
                if time.monotonic() > end:
                    break
                started = time.perf_counter()
                response = client.get("/metrics/get-history", params=params)
                latencies.append(time.perf_counter() - started)
                meter.requests += 1
                if response.status_code != 200:
                    raise VsError(f"MLflow get-history: HTTP {response.status_code}")
                size = len(response.content)
                answer = response.json()
    got = sorted((m["step"], m["value"]) for m in answer.get("metrics", []))
    if [v for _, v in got] != values or len(got) != n:
        raise VsError(f"MLflow get-history returned {len(got)} points, not the {n} logged")
    out["mlflow_get_history"] = {
        "request": f"GET metrics/get-history?run_id&metric_key&max_results={n}",
        "response_bytes": size,
        **latencies_ms(latencies),
        **{k: v for k, v in meter.summary().items() if k != "wall_s"},
        "answer_verified": True,
    }
    return out


# ---------------------------------------------------------------- 5, 6: registry

SET_POLICY = """
mutation Policy($input: SetPromotionPolicyInput!) {
  setPromotionPolicy(input: $input) { __typename ... on Error { code message } }
}"""


def _mg_mutate(
    client: Client, query: str, variables: dict[str, Any], field_name: str, typename: str
) -> tuple[float, dict[str, Any]]:
    elapsed, data, _ = bench.post(client, body(query, variables))
    return elapsed, bench.expect_success(data[field_name], typename)


def register(ctx: Ctx) -> dict[str, Any]:
    n = ctx.sizes.registers
    out: dict[str, Any] = {"versions": n}
    log(f"register: {n} versions each")
    meter = Meter(ctx.mg_cpu)
    latencies: list[float] = []
    with ctx.mg.client() as client:
        _mg_mutate(
            client,
            REGISTER,
            {"input": {"model": VS_MODEL + "-warm", "source": "s3://b/w"}},
            "registerModelVersion",
            "RegisterModelVersionSuccess",
        )
        end = ctx.deadline.budget(60)
        with meter.run():
            for i in range(n):
                if time.monotonic() > end:
                    break
                variables = {"input": {"model": VS_MODEL, "source": f"s3://bench/{i}"}}
                elapsed, got = _mg_mutate(
                    client,
                    REGISTER,
                    variables,
                    "registerModelVersion",
                    "RegisterModelVersionSuccess",
                )
                if got["modelVersion"]["version"] != i + 1:
                    raise VsError(
                        f"registerModelVersion made version {got['modelVersion']['version']}"
                    )
                latencies.append(elapsed)
                meter.requests += 1
    out["modelgraph"] = {**latencies_ms(latencies), **meter.summary()}
    meter = Meter(ctx.ml.cpu_seconds)
    latencies = []
    with ctx.ml.client() as client:
        ml_call(client, "POST", "/registered-models/create", json={"name": VS_MODEL})
        ml_call(client, "POST", "/registered-models/create", json={"name": VS_MODEL + "-warm"})
        ml_call(
            client,
            "POST",
            "/model-versions/create",
            json={"name": VS_MODEL + "-warm", "source": "s3://b/w"},
        )
        end = ctx.deadline.budget(60)
        with meter.run():
            for i in range(n):
                if time.monotonic() > end:
                    break
                latencies.append(
                    ml_timed(
                        client,
                        "POST",
                        "/model-versions/create",
                        json={"name": VS_MODEL, "source": f"s3://bench/{i}"},
                    )
                )
                meter.requests += 1
    out["mlflow"] = {**latencies_ms(latencies), **meter.summary()}
    return out


def transition(ctx: Ctx) -> dict[str, Any]:
    """Each round: register a version and move it to STAGING (not timed), then to
    PRODUCTION, which archives the version there (timed)."""
    n = ctx.sizes.transitions
    out: dict[str, Any] = {
        "moves": n,
        "round": "register version k, move it to STAGING (not timed), then to PRODUCTION"
        " archiving version k-1 (timed)",
        "modelgraph_policy": "PRODUCTION needs the version's run to have accuracy >= 0.5"
        " (checked on every move); each move writes its events and audit rows",
    }
    log(f"transition: {n} promotions each")
    stage_q = bench.TRANSITION
    with ctx.mg.client() as client:
        run_id = bench.start_run(client, "promote")
        points = [
            {"key": "accuracy", "value": 0.9, "step": 0, "timestamp": int(time.time() * 1000)}
        ]
        _mg_mutate(
            client,
            bench.LOG_METRICS,
            {"input": {"runId": run_id, "points": points}},
            "logMetrics",
            "LogMetricsSuccess",
        )
        _mg_mutate(
            client,
            REGISTER,
            {"input": {"model": PROMOTE_MODEL, "runId": run_id}},
            "registerModelVersion",
            "RegisterModelVersionSuccess",
        )
        policy = {
            "model": PROMOTE_MODEL,
            "stage": "PRODUCTION",
            "metricRules": [{"metric": "accuracy", "op": "GTE", "value": 0.5}],
        }
        _mg_mutate(
            client, SET_POLICY, {"input": policy}, "setPromotionPolicy", "SetPromotionPolicySuccess"
        )
        meter = Meter(ctx.mg_cpu)
        latencies: list[float] = []
        end = ctx.deadline.budget(90)
        for k in range(1, n + 2):  # round 1 is the warm-up
            if time.monotonic() > end:
                break
            if k > 1:
                _mg_mutate(
                    client,
                    REGISTER,
                    {"input": {"model": PROMOTE_MODEL, "runId": run_id}},
                    "registerModelVersion",
                    "RegisterModelVersionSuccess",
                )
            _mg_mutate(
                client,
                stage_q,
                {"input": {"model": PROMOTE_MODEL, "version": k, "stage": "STAGING"}},
                "transitionModelVersion",
                "TransitionModelVersionSuccess",
            )
            variables = {"input": {"model": PROMOTE_MODEL, "version": k, "stage": "PRODUCTION"}}
            c0 = ctx.mg_cpu()
            elapsed, got = _mg_mutate(
                client,
                stage_q,
                variables,
                "transitionModelVersion",
                "TransitionModelVersionSuccess",
            )
            c1 = ctx.mg_cpu()
            if got["modelVersion"]["stage"] != "PRODUCTION":
                raise VsError(f"version {k} is {got['modelVersion']['stage']}")
            if k > 1:
                latencies.append(elapsed)
                meter.requests += 1
                if c0 is not None and c1 is not None:
                    meter.server_cpu_s = (meter.server_cpu_s or 0.0) + c1 - c0
    out["modelgraph"] = {**latencies_ms(latencies), **meter.summary()}
    with ctx.ml.client() as client:
        ml_call(client, "POST", "/registered-models/create", json={"name": PROMOTE_MODEL})
        meter = Meter(ctx.ml.cpu_seconds)
        latencies = []
        end = ctx.deadline.budget(90)
        for k in range(1, n + 2):
            if time.monotonic() > end:
                break
            ml_call(
                client,
                "POST",
                "/model-versions/create",
                json={"name": PROMOTE_MODEL, "source": f"s3://bench/p{k}"},
            )
            ml_call(
                client,
                "POST",
                "/model-versions/transition-stage",
                json={
                    "name": PROMOTE_MODEL,
                    "version": str(k),
                    "stage": "Staging",
                    "archive_existing_versions": False,
                },
            )
            c0 = ctx.ml.cpu_seconds()
            started = time.perf_counter()
            got = ml_call(
                client,
                "POST",
                "/model-versions/transition-stage",
                json={
                    "name": PROMOTE_MODEL,
                    "version": str(k),
                    "stage": "Production",
                    "archive_existing_versions": True,
                },
            )
            elapsed = time.perf_counter() - started
            c1 = ctx.ml.cpu_seconds()
            if got["model_version"]["current_stage"] != "Production":
                raise VsError(f"MLflow version {k} is {got['model_version']['current_stage']}")
            if k > 1:
                latencies.append(elapsed)
                meter.requests += 1
                if c0 is not None and c1 is not None:
                    meter.server_cpu_s = (meter.server_cpu_s or 0.0) + c1 - c0
        previous = ml_call(
            client, "GET", "/model-versions/get", params={"name": PROMOTE_MODEL, "version": "1"}
        )
        if previous["model_version"]["current_stage"] != "Archived":
            raise VsError("MLflow did not archive the previous PRODUCTION version")
    out["mlflow"] = {**latencies_ms(latencies), **meter.summary()}
    return out


# ---------------------------------------------------------------- 7: simple read

EXPERIMENT_QUERY = "query E($name: String!) { experiment(name: $name) { id name } }"


def _read_loop(send: Callable[[], bool], end: float, cap: int) -> tuple[int, int]:
    ok = errors = 0
    while ok + errors < cap and time.monotonic() < end:
        if send():
            ok += 1
        else:
            errors += 1
    return ok, errors


def _concurrent_reads(
    make_sender: Callable[[], tuple[Callable[[], bool], Callable[[], None]]],
    clients: int,
    seconds: float,
    cpu: Callable[[], float | None],
) -> dict[str, Any]:
    senders = [make_sender() for _ in range(clients)]
    try:
        for send, _ in senders:  # warm-up: connections open
            send()
        barrier = threading.Barrier(clients + 1)
        results: list[tuple[int, int] | BaseException | None] = [None] * clients
        box: dict[str, float] = {}

        def worker(i: int) -> None:
            barrier.wait()
            try:
                results[i] = _read_loop(senders[i][0], box["end"], 1_000_000)
            except BaseException as exc:  # reported below
                results[i] = exc

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
        for t in threads:
            t.start()
        c0, client0 = cpu(), time.process_time()
        box["end"] = time.monotonic() + seconds
        started = time.perf_counter()
        barrier.wait()
        for t in threads:
            t.join(timeout=seconds + 60)
        wall = time.perf_counter() - started
        c1, client1 = cpu(), time.process_time()
    finally:
        for _, close in senders:
            close()
    failed = [r for r in results if not isinstance(r, tuple)]
    if failed:
        raise VsError(f"a reader failed: {failed[0]!r}")
    ok = sum(r[0] for r in results if isinstance(r, tuple))
    errors = sum(r[1] for r in results if isinstance(r, tuple))
    cpu_s = c1 - c0 if c0 is not None and c1 is not None else None
    return {
        "clients": clients,
        "requests": ok + errors,
        "errors": errors,
        "wall_s": rounded(wall),
        "requests_per_s": rounded((ok + errors) / wall, 1) if wall else None,
        "server_cpu_s": rounded(cpu_s),
        # this process (the clients) shares the cores: near `wall`, it is the bottleneck
        "client_cpu_s": rounded(client1 - client0),
        "server_cpu_ms_per_request": rounded(cpu_s * 1000 / (ok + errors))
        if cpu_s and ok + errors
        else None,
    }


def simple_read(ctx: Ctx) -> dict[str, Any]:
    sizes = ctx.sizes
    payload = body(EXPERIMENT_QUERY, {"name": bench.EXPERIMENT})
    out: dict[str, Any] = {
        "modelgraph_request": EXPERIMENT_QUERY,
        "mlflow_request": f"GET experiments/get-by-name?experiment_name={bench.EXPERIMENT}",
        "seconds_per_level": sizes.read_seconds,
        "modelgraph": {},
        "mlflow": {},
    }

    def mg_sender() -> tuple[Callable[[], bool], Callable[[], None]]:
        client = ctx.mg.client()

        def send() -> bool:
            response = client.send(payload)
            return response.status_code == 200 and b'"name":"bench"' in response.content.replace(
                b" ", b""
            )

        return send, client.close

    def ml_sender() -> tuple[Callable[[], bool], Callable[[], None]]:
        client = ctx.ml.client()
        params = {"experiment_name": bench.EXPERIMENT}

        def send() -> bool:
            response = client.get("/experiments/get-by-name", params=params)
            return response.status_code == 200 and b'"bench"' in response.content

        return send, client.close

    for clients in sizes.read_clients:
        ctx.deadline.budget(sizes.read_seconds * 2 + 5)
        log(f"simple read: {clients} client(s), {sizes.read_seconds:g} s each")
        out["modelgraph"][str(clients)] = _concurrent_reads(
            mg_sender, clients, sizes.read_seconds, ctx.mg_cpu
        )
        out["mlflow"][str(clients)] = _concurrent_reads(
            ml_sender, clients, sizes.read_seconds, ctx.ml.cpu_seconds
        )
    return out


# ---------------------------------------------------------------- 8: load mix


def load_mix(ctx: Ctx, tmp: Path) -> dict[str, Any]:
    import load

    db_url = f"sqlite+aiosqlite:///{tmp / 'load.db'}"
    server = Server(db_url, tmp / "load-server.log", error=VsError)
    log(
        f"load mix: a fresh modelgraph server, 8 writers + 50 readers, {ctx.sizes.load_seconds:g} s"
    )
    try:
        server.start(timeout=min(60.0, ctx.deadline.cap(60)))
        report = asyncio.run(
            load.run_load(
                server.base_url,
                auth_headers(),
                db_url,
                seconds=ctx.sizes.load_seconds,
                writers=8,
                readers=50,
                server_cpu=server.cpu_seconds,
            )
        )
        report["checks"]["server_alive_after_load"] = server.alive()
        memory = tree_memory_mib(server.proc.pid) if server.proc else {}
    finally:
        server.stop()
        # The main server's token again for the helpers that read it from the environment.
        admin_token(ctx.mg.database_url)
    load.add_server_log_checks(report, server.log_text())
    requests = report["requests"]["total"]
    cpu_s = report["cpu"]["server_s"]
    return {
        "writers": 8,
        "readers": 50,
        "seconds": ctx.sizes.load_seconds,
        "requests": requests,
        "requests_per_s": report["throughput"]["requests_per_s"],
        "points_per_s": report["throughput"]["points_per_s"],
        "errors": report["errors"]["total"],
        "server_cpu_s": cpu_s,
        "server_cpu_ms_per_request": rounded(cpu_s * 1000 / requests)
        if cpu_s and requests
        else None,
        "client_cpu_s": report["cpu"]["client_s"],
        "latency_ms": report["latency_ms"],
        "checks": report["checks"],
        "ok": report["ok"],
        "server_memory": memory,
    }


# ---------------------------------------------------------------- 9: watchers


def watchers(ctx: Ctx) -> dict[str, Any]:
    sizes = ctx.sizes
    limit = ctx.deadline.cap(200 if sizes.watchers >= 500 else 90)
    command = [
        python_exe(),
        str(ROOT / "scripts" / "watch_latency.py"),
        "--watchers",
        str(sizes.watchers),
        "--events",
        str(sizes.watch_events),
        "--time-limit",
        str(int(limit)),
    ]
    env = {**clean_env(), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop(TOKEN_ENV, None)
    log(f"watchers: {' '.join(command[1:])}")
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        stdout, stderr = proc.communicate(timeout=limit + 30)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # it stops its server and prints what it has
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:  # interrupted: it stops its own server on SIGTERM
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    try:
        report = json.loads(stdout)
    except json.JSONDecodeError as exc:
        tail = stderr.decode(errors="replace")[-1500:]
        raise VsError(f"watch_latency printed no JSON (exit {proc.returncode}): {tail}") from exc
    latency = report.get("latency", {})
    return {
        "command": "scripts/watch_latency " + " ".join(command[2:]),
        "watchers": sizes.watchers,
        "mutations": sizes.watch_events,
        "from_request_sent": latency.get("from_request_sent"),
        "from_response_received": latency.get("from_response_received"),
        "counts": report.get("counts"),
        "cpu_s": report.get("cpu_s"),
        "errors": report.get("errors"),
        "ok": report.get("ok"),
        "exit_code": proc.returncode,
    }


# ---------------------------------------------------------------- rows, ratios, aims


@dataclass
class Row:
    key: str
    figure: str
    unit: str  # "points/s", "ms", "req/s", "MiB"
    higher_is_better: bool
    mlflow: float | None = None
    modelgraph: float | None = None
    aim: str = "—"
    aim_value: float | None = None
    # "min": modelgraph >= aim_value; "max": modelgraph <= aim_value; "ratio": ratio >= it.
    aim_kind: str | None = None
    mlflow_text: str | None = None  # instead of the number ("no events", "—")
    modelgraph_text: str | None = None
    extra_ok: bool = True  # another condition of the aim (e.g. zero errors)

    @property
    def ratio(self) -> float | None:
        """How many times better modelgraph is (>1: modelgraph ahead)."""
        a, b = self.mlflow, self.modelgraph
        if a is None or b is None or a == 0 or b == 0:
            return None
        return b / a if self.higher_is_better else a / b

    @property
    def met(self) -> bool | None:
        if self.aim_kind is None or self.aim_value is None:
            return None
        if self.aim_kind == "ratio":
            r = self.ratio
            return None if r is None else r >= self.aim_value and self.extra_ok
        if self.modelgraph is None:
            return None
        if self.aim_kind == "min":
            return self.modelgraph >= self.aim_value and self.extra_ok
        return self.modelgraph <= self.aim_value and self.extra_ok


def human(value: float | None, unit: str = "") -> str:
    """Compact numbers: 20.6k, 315, 5.2, 0.84; `unit` appended with a space (not for k)."""
    if value is None:
        return "—"
    a = abs(value)
    if a >= 1_000_000:
        text = f"{value / 1e6:.3g}M"
    elif a >= 10_000:
        text = f"{value / 1000:,.0f}k"
    elif a >= 1000:
        text = f"{value / 1000:.1f}k"
    elif a >= 100:
        text = f"{value:.0f}"
    elif a >= 10:
        text = f"{value:.1f}"
    elif a >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".rstrip() if unit else text


def ratio_text(value: float | None) -> str:
    if value is None:
        return "—"
    digits = 0 if value >= 100 else 1 if value >= 1 else 2
    return f"{value:.{digits}f}{TIMES}"


def met_text(met: bool | None) -> str:
    return {True: "yes", False: "no", None: "—"}[met]


def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)  # type: ignore[assignment]
    return data


def build_rows(result: dict[str, Any]) -> list[Row]:
    """The table's rows from the run's JSON (missing sections leave empty cells)."""
    r = result.get("results", {})
    rows: list[Row] = []
    ml_ingest = _get(r, "ingest", "mlflow_log_batch", "points_per_s")
    rows.append(
        Row(
            "ingest_points",
            "ingest, 1,000-point batches, GraphQL points vs MLflow log_batch",
            "points/s",
            True,
            ml_ingest,
            _get(r, "ingest", "graphql_points", "points_per_s"),
            f"≥ 20{TIMES} MLflow",
            20,
            "ratio",
        )
    )
    rows.append(
        Row(
            "ingest_face",
            "ingest, 1,000-point batches, modelgraph's MLflow face log-batch",
            "points/s",
            True,
            ml_ingest,
            _get(r, "ingest", "mlflow_face_log_batch", "points_per_s"),
            f"≥ 20{TIMES} MLflow",
            20,
            "ratio",
        )
    )
    rows.append(
        Row(
            "ingest_series",
            "ingest, columnar series form (vs MLflow log_batch)",
            "points/s",
            True,
            ml_ingest,
            _get(r, "ingest", "graphql_series", "points_per_s"),
            "≥ 250k points/s",
            250_000,
            "min",
        )
    )
    for label in ("runs_small", "runs_big"):
        block = _get(r, "best_run", label) or {}
        n = block.get("runs")
        runs = f"{n:,}" if isinstance(n, int) else "?"
        ml = _get(block, "mlflow", "p50_ms")
        rows.append(
            Row(
                f"best_run_{label}",
                f"best run over {runs} runs",
                "ms",
                False,
                ml,
                _get(block, "modelgraph", "p50_ms"),
                "≤ 5 ms p50 at 100,000 runs",
                5,
                "max",
                mlflow_text=None if ml is not None else "not measured (minutes per query)",
            )
        )
    h = r.get("history", {})
    n_points = h.get("points")
    pts = f"{n_points:,}" if isinstance(n_points, int) else "?"
    ml_hist = _get(h, "mlflow_get_history", "p50_ms")
    rows.append(
        Row(
            "history_objects",
            f"metric history, {pts} points, objects",
            "ms",
            False,
            ml_hist,
            _get(h, "metricHistory", "p50_ms"),
            "≤ 100 ms",
            100,
            "max",
        )
    )
    rows.append(
        Row(
            "history_columns",
            f"metric history, {pts} points, packed columns (vs MLflow get-history)",
            "ms",
            False,
            ml_hist,
            _get(h, "metricSeriesPacked", "p50_ms"),
            "≤ 25 ms",
            25,
            "max",
        )
    )
    rows.append(
        Row(
            "history_json_columns",
            f"metric history, {pts} points, JSON columns",
            "ms",
            False,
            ml_hist,
            _get(h, "metricSeries", "p50_ms"),
        )
    )
    rows.append(
        Row(
            "register",
            "register a version",
            "ms",
            False,
            _get(r, "register", "mlflow", "p50_ms"),
            _get(r, "register", "modelgraph", "p50_ms"),
            "≤ 3 ms",
            3,
            "max",
        )
    )
    rows.append(
        Row(
            "transition",
            "transition to PRODUCTION (policy, event, audit, archive)",
            "ms",
            False,
            _get(r, "transition", "mlflow", "p50_ms"),
            _get(r, "transition", "modelgraph", "p50_ms"),
            "≤ 5 ms",
            5,
            "max",
        )
    )
    read = r.get("simple_read", {})
    for clients in sorted(read.get("modelgraph", {}), key=int):
        one = clients == "1"
        rows.append(
            Row(
                f"read_{clients}",
                f"simple read (experiment(name) {{ id name }}), {clients} client"
                + ("" if one else "s"),
                "req/s",
                True,
                _get(read, "mlflow", clients, "requests_per_s"),
                _get(read, "modelgraph", clients, "requests_per_s"),
                "≥ 2,500 req/s in one process" if one else "—",
                2500 if one else None,
                "min" if one else None,
            )
        )
    lm = r.get("load_mix")
    if lm:
        rps, cpu_ms, errors = (
            lm.get("requests_per_s"),
            lm.get("server_cpu_ms_per_request"),
            lm.get("errors"),
        )
        rows.append(
            Row(
                "load_mix",
                "the load mix (8 writers, 50 readers)",
                "req/s",
                True,
                None,
                rps,
                f"≥ 3{TIMES} {LOAD_MIX_BASELINE_RPS} req/s, zero errors",
                3 * LOAD_MIX_BASELINE_RPS,
                "min",
                mlflow_text="not run (modelgraph only)",
                modelgraph_text=f"{human(rps)} req/s, {human(cpu_ms)} ms server CPU per request, "
                f"{errors} errors",
                extra_ok=errors == 0 and bool(lm.get("ok")),
            )
        )
    w = r.get("watchers")
    if w:
        p50, p99 = _get(w, "from_request_sent", "p50_ms"), _get(w, "from_request_sent", "p99_ms")
        n_w = w.get("watchers")
        rows.append(
            Row(
                "watchers",
                f"one promotion → {n_w:,} watchers",
                "ms",
                False,
                None,
                p99,
                "p99 ≤ 100 ms",
                100,
                "max",
                mlflow_text="no events",
                modelgraph_text=f"p50 {human(p50)} ms, p99 {human(p99)} ms",
                extra_ok=bool(w.get("ok")),
            )
        )
    return rows


def cell(row: Row, side: str) -> str:
    text = row.mlflow_text if side == "mlflow" else row.modelgraph_text
    value = row.mlflow if side == "mlflow" else row.modelgraph
    if text is not None and (value is None or side == "modelgraph"):
        return text
    if value is None:
        return "—"
    unit = {"points/s": "points/s", "ms": "ms", "req/s": "req/s", "MiB": "MiB"}[row.unit]
    return human(value, unit)


def table_rows(rows: list[Row]) -> list[list[str]]:
    return [
        [
            row.figure,
            cell(row, "mlflow"),
            cell(row, "modelgraph"),
            ratio_text(row.ratio),
            row.aim,
            met_text(row.met),
        ]
        for row in rows
    ]


HEADER = ["figure", "MLflow", "modelgraph", "ratio", "aim", "met"]


def text_table(rows: list[Row]) -> str:
    body_rows = [HEADER, *table_rows(rows)]
    widths = [max(len(r[i]) for r in body_rows) for i in range(len(HEADER))]
    lines = []
    for n, r in enumerate(body_rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def cost_rows(result: dict[str, Any]) -> list[list[str]]:
    """Server CPU per request per figure, and memory, MLflow beside modelgraph."""
    r = result.get("results", {})
    pairs: list[tuple[str, Any, Any]] = [
        (
            "ingest (1,000-point batch)",
            _get(r, "ingest", "mlflow_log_batch"),
            _get(r, "ingest", "graphql_points"),
        ),
        ("ingest, series form", None, _get(r, "ingest", "graphql_series")),
        (
            "ingest, MLflow face",
            _get(r, "ingest", "mlflow_log_batch"),
            _get(r, "ingest", "mlflow_face_log_batch"),
        ),
        (
            "best run (small)",
            _get(r, "best_run", "runs_small", "mlflow"),
            _get(r, "best_run", "runs_small", "modelgraph"),
        ),
        (
            "best run (large)",
            _get(r, "best_run", "runs_big", "mlflow"),
            _get(r, "best_run", "runs_big", "modelgraph"),
        ),
        (
            "metric history, objects",
            _get(r, "history", "mlflow_get_history"),
            _get(r, "history", "metricHistory"),
        ),
        ("metric history, JSON columns", None, _get(r, "history", "metricSeries")),
        ("metric history, packed columns", None, _get(r, "history", "metricSeriesPacked")),
        ("register a version", _get(r, "register", "mlflow"), _get(r, "register", "modelgraph")),
        (
            "transition to PRODUCTION",
            _get(r, "transition", "mlflow"),
            _get(r, "transition", "modelgraph"),
        ),
    ]
    for clients in sorted(_get(r, "simple_read", "modelgraph") or {}, key=int):
        pairs.append(
            (
                f"simple read, {clients} client(s)",
                _get(r, "simple_read", "mlflow", clients),
                _get(r, "simple_read", "modelgraph", clients),
            )
        )
    pairs.append(("load mix", None, r.get("load_mix")))
    out = []
    for name, ml, mg in pairs:
        a = _get(ml, "server_cpu_ms_per_request") if ml else None
        b = _get(mg, "server_cpu_ms_per_request") if mg else None
        if a is None and b is None:
            continue
        out.append([name, human(a, "ms"), human(b, "ms"), ratio_text(a / b if a and b else None)])
    return out


def memory_rows(result: dict[str, Any]) -> list[list[str]]:
    s = result.get("servers", {})
    out = []
    for label, key in (("RSS after start", "memory_start"), ("RSS at the end", "memory_end")):
        ml, mg = _get(s, "mlflow", key) or {}, _get(s, "modelgraph", key) or {}
        out.append([label, human(ml.get("rss_mib"), "MiB"), human(mg.get("rss_mib"), "MiB")])
    ml, mg = _get(s, "mlflow", "memory_end") or {}, _get(s, "modelgraph", "memory_end") or {}
    out.append(
        [
            "peak RSS (VmHWM)",
            human(ml.get("peak_rss_mib"), "MiB"),
            human(mg.get("peak_rss_mib"), "MiB"),
        ]
    )
    out.append(
        [
            "processes",
            str(_get(s, "mlflow", "processes") or "—"),
            str(_get(s, "modelgraph", "processes") or "—"),
        ]
    )
    out.append(
        [
            "total server CPU",
            human(_get(s, "mlflow", "cpu_s_total"), "s"),
            human(_get(s, "modelgraph", "cpu_s_total"), "s"),
        ]
    )
    return out


# ---------------------------------------------------------------- BENCHMARKS.md


def profiles_block(previous: str | None) -> str:
    """The profiles section's kept text, markers included (empty between them at first)."""
    if previous:
        start = previous.find(PROFILES_START)
        end = previous.find(PROFILES_END, start + len(PROFILES_START)) if start >= 0 else -1
        if start >= 0 and end >= 0:
            return previous[start : end + len(PROFILES_END)]
    return f"{PROFILES_START}\n{PROFILES_END}"


def render_markdown(result: dict[str, Any], rows: list[Row], previous: str | None) -> str:
    m = result.get("machine", {})
    v = result.get("versions", {})
    met = [row for row in rows if row.met is not None]
    ok = sum(1 for row in met if row.met)
    quick = result.get("mode") == "quick"
    lines = [
        "# Benchmarks: modelgraph beside MLflow",
        "",
        "Written by `scripts/bench --vs-mlflow` (scripts/bench_vs_mlflow.py); regenerate rather"
        " than edit, except between the profiles markers, which the generator keeps.",
        "",
    ]
    if quick:
        lines += [
            "> **Smoke run (`--quick`): small sizes, not the figures.** Run the full benchmark on"
            " an idle machine for numbers to quote.",
            "",
        ]
    if result.get("errors"):
        lines += ["> **This run had errors:** " + "; ".join(result["errors"])[:800], ""]
    lines += [
        f"- date: {result.get('started_at')} (UTC); run time {result.get('duration_s')} s",
        f"- commit: `{result.get('commit')}`",
        f"- machine: {m.get('cpu_model')}, {m.get('cores')} cores, {m.get('ram_gib')} GiB RAM,"
        f" {m.get('platform')}; load average at start {m.get('loadavg_at_start')}",
        f"- MLflow {v.get('mlflow')} (`mlflow server --workers 1`, SQLite, artifacts proxied"
        " to a local folder, job runner off); modelgraph `python -m app serve` (one process,"
        " SQLite, synchronous=FULL, token authentication, query limits on)",
        f"- Python {m.get('python')}; "
        + ", ".join(f"{k} {val}" for k, val in v.items() if k != "mlflow"),
        f"- command: `{result.get('command')}`",
        f"- MLflow server: `{_get(result, 'servers', 'mlflow', 'command')}`",
        f"- modelgraph server: `{_get(result, 'servers', 'modelgraph', 'command')}`",
        "",
        f"Aims met: {ok} of {len(met)}. Ratios are how many times better modelgraph is"
        " (MLflow/modelgraph for times, modelgraph/MLflow for rates).",
        "",
        "![modelgraph beside MLflow](benchmarks.png)",
        "",
        markdown_table(HEADER, table_rows(rows)),
        "",
        "## Server cost",
        "",
        "CPU seconds the server used (utime + stime from /proc, summed over its process tree:"
        " MLflow runs uvicorn as a child) divided by the requests of that figure:",
        "",
        markdown_table(
            ["figure", "MLflow CPU per request", "modelgraph CPU per request", "ratio"],
            cost_rows(result),
        ),
        "",
        markdown_table(
            ["memory (VmRSS, process tree)", "MLflow", "modelgraph"], memory_rows(result)
        ),
        "",
        "## How it was measured",
        "",
    ]
    lines += [f"- {note}" for note in result.get("notes", [])]
    lines += [
        "",
        "The full JSON of the run is printed by the command after the table.",
        "",
        "## Profiles",
        "",
        profiles_block(previous),
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- the plot


def _aim_x(row: Row) -> float | None:
    """Where the aim sits on the row's own axis (a ratio aim times MLflow's figure)."""
    if row.aim_kind is None or row.aim_value is None:
        return None
    if row.aim_kind != "ratio":
        return row.aim_value
    if row.mlflow is None:
        return None
    return row.mlflow * row.aim_value if row.higher_is_better else row.mlflow / row.aim_value


def plot(rows: list[Row], result: dict[str, Any], path: Path) -> None:
    """On top, how many times better than MLflow each figure is; below, one small panel
    per figure: MLflow's and modelgraph's bars on a log scale, the aim as a dashed line."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    orange, blue, green, red, grey = "#dd8452", "#4c72b0", "#2f855a", "#c53030", "#555555"
    shown = [row for row in rows if row.modelgraph is not None]
    compared = [row for row in shown if row.ratio is not None]
    cols = 3
    panel_rows = max(1, -(-len(shown) // cols))
    top_h = 0.4 * len(compared) + 1.3 if compared else 0.0
    fig = plt.figure(figsize=(cols * 5.4, top_h + panel_rows * 2.2 + 0.9), layout="constrained")
    if compared:
        top, bottom = fig.subfigures(2, 1, height_ratios=[top_h, panel_rows * 2.2])
    else:
        top, bottom = None, fig
    tick = FuncFormatter(lambda x, _: f"{x:g}" if x < 1000 else human(x))

    if top is not None:
        ax = top.subplots()
        ys = list(range(len(compared)))[::-1]
        ratios = [row.ratio or 1.0 for row in compared]
        ax.barh(ys, ratios, color=[blue if r >= 1 else orange for r in ratios], height=0.6)
        ax.set_yticks(ys, [textwrap.shorten(row.figure, 70) for row in compared], fontsize=9)
        ax.set_xscale("log")
        ax.axvline(1.0, color=grey, linewidth=1)
        for y, row, r in zip(ys, compared, ratios, strict=True):
            ax.text(r, y, f" {ratio_text(r)}", va="center", fontsize=9, fontweight="bold")
            if row.aim_kind == "ratio" and row.aim_value:
                ax.plot([row.aim_value], [y], marker="|", markersize=16, color=green, mew=2.5)
        ax.set_xlim(min(0.5, min(ratios) / 1.5), max(ratios) * 3)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}{TIMES}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(
            f"How many times better modelgraph is than MLflow (>1{TIMES}: modelgraph ahead;"
            " green tick: the aim where it is a ratio)",
            fontsize=10.5,
        )
    panels = bottom.subplots(panel_rows, cols, squeeze=False)
    for ax in list(panels.flat)[len(shown) :]:
        ax.axis("off")
    for ax, row in zip(panels.flat, shown, strict=False):
        bars = [("modelgraph", row.modelgraph, blue, 0)]
        if row.mlflow is not None:
            bars.append(("MLflow", row.mlflow, orange, 1))
        for _, value, colour, y in bars:
            ax.barh([y], [value], color=colour, height=0.6)
            ax.text(value, y, " " + human(value), va="center", fontsize=8.5)
        ax.set_yticks([y for *_, y in bars], [label for label, *_ in bars], fontsize=8.5)
        ax.set_ylim(-0.6, 1.6)
        ax.set_xscale("log")
        aim = _aim_x(row)
        values = [value for _, value, _, _ in bars if value]
        lo, hi = min([*values, *([aim] if aim else [])]), max([*values, *([aim] if aim else [])])
        ax.set_xlim(lo / 2.5, hi * 5)
        if aim is not None:
            colour = green if row.met else red
            ax.axvline(aim, color=colour, linestyle="--", linewidth=1.6)
            aim_text = f"{aim:.3g}" if aim < 1000 else human(aim)
            ax.text(aim, 1.45, f" aim {aim_text}", color=colour, fontsize=8, va="center")
        if row.mlflow is None:  # in MLflow's empty slot
            ax.text(
                0.02,
                1,
                f"MLflow: {row.mlflow_text or '—'}",
                transform=ax.get_yaxis_transform(),
                va="center",
                fontsize=8,
                color=grey,
            )
        ax.xaxis.set_major_formatter(tick)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(axis="x", labelsize=7.5)
        better = "higher is better" if row.higher_is_better else "lower is better"
        verdict = {True: "aim met", False: "aim not met", None: "no aim"}[row.met]
        title = textwrap.fill(row.figure, 62)
        ax.set_title(f"{title}\n{row.unit}, {better}; {verdict}", fontsize=8.5)
    mode = " — QUICK SMOKE RUN, not the figures" if result.get("mode") == "quick" else ""
    fig.suptitle(
        f"modelgraph beside MLflow {result.get('versions', {}).get('mlflow', '')}, same workload,"
        f" same machine{mode}\n{result.get('started_at')}, commit"
        f" {str(result.get('commit'))[:12]}, {result.get('machine', {}).get('cores')} cores",
        fontsize=11,
    )
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------- main


def machine() -> dict[str, Any]:
    ram = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = round(int(line.split()[1]) / 1024 / 1024, 1)
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": ram,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def git_commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "app")
    return commit + (" (app/ has uncommitted changes)" if dirty else "")


NOTES = [
    "Both servers run at once on the same machine; each figure drives one server at a time,"
    " from one client process (this script), over httpx with keep-alive connections. MLflow is"
    " called through its REST API exactly as MlflowClient sends it, modelgraph through GraphQL"
    " (and its MLflow face for the log-batch row).",
    "Latencies are client round trips; p50 of the repeated requests after a warm-up.",
    "Ingest: 5 keys round-robin, steps rising, 1,000 points per request, one client; the same"
    " payload generator (scripts/bench.py) for MLflow's log-batch and modelgraph's MLflow face.",
    "Best run: the same runs (ids, 5 metrics x 3 steps, timestamps) written into both"
    " databases directly: modelgraph's tables by a bulk Core INSERT, MLflow's runs, tags,"
    " metrics and latest_metrics tables through sqlite3 with MLflow's own schema; both answers"
    " are checked against the best run computed by the script. MLflow is measured at 5,000"
    " runs only: at 100,000 its search takes minutes per query (its time grows faster than the"
    " runs: 4x the runs took ~9x the time in a smoke run); --mlflow-big seeds it too and times"
    " one query.",
    "Metric history: one key's points logged through each server's log-batch / logMetrics;"
    " MLflow's get-history with max_results equal to the points; all answers compared with the"
    " logged values.",
    "Transition: each round registers a version and moves it to STAGING (not timed), then to"
    " PRODUCTION (timed), which archives the previous PRODUCTION version; modelgraph checks a"
    " PRODUCTION promotion policy (a metric rule on the version's run) and writes events and"
    " audit rows in the same transaction.",
    "Simple read: N client threads in a closed loop for a fixed time; the client process"
    " shares the 2 cores with the server, so the client's own cost is in the figure.",
    "Load mix and watchers: scripts/load.py's run_load (8 writers, 50 readers) on a fresh"
    " modelgraph server, and scripts/watch_latency.py as a subprocess with its own server;"
    " latency of a delivery is from the mutation's request being sent to the watcher's receipt.",
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run (~2 min)")
    parser.add_argument(
        "--time-limit", type=float, help="seconds for the whole run (default 900; quick 360)"
    )
    parser.add_argument(
        "--no-docs",
        action="store_true",
        help="do not write docs/BENCHMARKS.md and docs/benchmarks.png",
    )
    parser.add_argument(
        "--mlflow-big",
        action="store_true",
        help="also seed MLflow with the large size and time one search (minutes at 100,000)",
    )
    parser.add_argument("--json", type=Path, help="also write the JSON to this file")
    parser.add_argument(
        "--from-json",
        type=Path,
        help="write the docs and print the table from a saved run (--json) instead of running",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if args.time_limit is None:
        args.time_limit = 360.0 if args.quick else 900.0
    return args


SECTIONS = (
    "ingest",
    "best_run",
    "history",
    "register",
    "transition",
    "simple_read",
    "load_mix",
    "watchers",
)


def write_docs(result: dict[str, Any], rows: list[Row]) -> None:
    """docs/BENCHMARKS.md (the profiles block kept) and docs/benchmarks.png."""
    md = DOCS / "BENCHMARKS.md"
    previous = md.read_text() if md.exists() else None
    md.write_text(render_markdown(result, rows, previous))
    plot(rows, result, DOCS / "benchmarks.png")
    log(f"wrote {md.relative_to(ROOT)} and docs/benchmarks.png")


def render_main(path: Path) -> int:
    """--from-json: the docs again from a saved run's JSON (no servers)."""
    result = json.loads(path.read_text())
    rows = build_rows(result)
    write_docs(result, rows)
    print(text_table(rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        return render_main(args.from_json)
    sizes = QUICK if args.quick else FULL
    deadline = Deadline(args.time_limit, VsError)
    started = time.monotonic()
    command = "scripts/bench --vs-mlflow" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:])
    )
    result: dict[str, Any] = {
        "benchmark": "scripts/bench --vs-mlflow",
        "mode": "quick" if args.quick else "full",
        "command": command,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": machine(),
        "sizes": asdict(sizes),
        "notes": NOTES,
    }
    errors: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="modelgraph-vs-mlflow-"))
    (tmp / "mlflow").mkdir()
    mg = Server(
        f"sqlite+aiosqlite:///{tmp / 'modelgraph.db'}", tmp / "modelgraph.log", error=VsError
    )
    ml: MlflowServer | None = None
    interrupted: int | None = None
    with exit_on_sigterm():
        try:
            python = mlflow_python()
            ml = MlflowServer(python, tmp / "mlflow")
            mlflow_version = subprocess.run(
                [python, "-c", "import importlib.metadata as m; print(m.version('mlflow'))"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            ).stdout.strip()
            result["versions"] = {
                "mlflow": mlflow_version,
                **package_versions(
                    (
                        "strawberry-graphql",
                        "starlette",
                        "uvicorn",
                        "SQLAlchemy",
                        "aiosqlite",
                        "httpx",
                    )
                ),
            }
            log(f"starting MLflow {mlflow_version} on {ml.url}")
            ml.start(timeout=deadline.cap(180))
            log(f"starting modelgraph on {mg.base_url}")
            mg.start(timeout=deadline.cap(60))
            time.sleep(1.0)  # let both settle before reading their idle memory
            assert mg.proc is not None
            result["servers"] = {
                "mlflow": {
                    "url": ml.url,
                    "command": " ".join(["mlflow", *ml.command[3:]]).replace(str(tmp), "<tmp>"),
                    "startup_s": rounded(ml.startup_s),
                    "memory_start": ml.memory(),
                },
                "modelgraph": {
                    "url": mg.base_url,
                    "command": "python -m app serve --host 127.0.0.1 --port <free>",
                    "startup_s": rounded(mg.startup_s),
                    "memory_start": tree_memory_mib(mg.proc.pid),
                },
            }
            ctx = Ctx(mg, ml, sizes, deadline)
            results: dict[str, Any] = {}
            result["results"] = results
            steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
                ("ingest", lambda: ingest(ctx)),
                ("best_run", lambda: best_run(ctx, args.mlflow_big)),
                ("history", lambda: history(ctx)),
                ("register", lambda: register(ctx)),
                ("transition", lambda: transition(ctx)),
                ("simple_read", lambda: simple_read(ctx)),
            ]
            for name, step in steps:
                try:
                    results[name] = step()
                except Exception as exc:  # keep going: report what could be measured
                    errors.append(f"{name}: {type(exc).__name__}: {exc}")
                    log(f"{name} failed:\n{traceback.format_exc()}")
                    if "global time limit" in str(exc) or not (
                        mg.alive() and ml.proc and ml.proc.poll() is None
                    ):
                        raise
            result["servers"]["mlflow"].update(
                memory_end=ml.memory(),
                processes=ml.processes(),
                cpu_s_total=rounded(ml.cpu_seconds()),
            )
            result["servers"]["modelgraph"].update(
                memory_end=tree_memory_mib(mg.proc.pid),
                processes=len(process_tree(mg.proc.pid)),
                cpu_s_total=rounded(tree_cpu_seconds(mg.proc.pid)),
            )
            log("stopping MLflow (the last two figures are modelgraph's only)")
            ml.stop()
            for name, step in (
                ("load_mix", lambda: load_mix(ctx, tmp)),
                ("watchers", lambda: watchers(ctx)),
            ):
                try:
                    results[name] = step()
                except Exception as exc:
                    errors.append(f"{name}: {type(exc).__name__}: {exc}")
                    log(f"{name} failed:\n{traceback.format_exc()}")
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            log(traceback.format_exc())
        except (KeyboardInterrupt, SystemExit) as exc:
            interrupted = (
                exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else 130
            )
            errors.append(f"interrupted ({type(exc).__name__})")
            log("interrupted; stopping the servers")
        finally:
            mg.stop()
            if ml is not None:
                ml.stop()
                if errors:
                    result.setdefault("servers", {}).setdefault("mlflow", {})["log_tail"] = (
                        ml.log_tail()
                    )
            if errors:
                result.setdefault("servers", {}).setdefault("modelgraph", {})["log_tail"] = (
                    mg.log_tail()
                )
            if args.keep:
                result["folder"] = str(tmp)
            else:
                shutil.rmtree(tmp, ignore_errors=True)
    result["errors"] = errors
    result["duration_s"] = rounded(time.monotonic() - started, 1)
    rows = build_rows(result)
    result["table"] = [
        {
            "key": row.key,
            "figure": row.figure,
            "unit": row.unit,
            "mlflow": row.mlflow,
            "modelgraph": row.modelgraph,
            "ratio": rounded(row.ratio, 2),
            "aim": row.aim,
            "met": row.met,
        }
        for row in rows
    ]
    if not args.no_docs and interrupted is None and "results" in result:
        try:
            write_docs(result, rows)
        except Exception as exc:  # the table and JSON still stand
            errors.append(f"docs: {type(exc).__name__}: {exc}")
            log(traceback.format_exc())
    print(text_table(rows))
    print()
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    if interrupted is not None:
        return interrupted
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
