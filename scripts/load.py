"""Load a real modelgraph server with concurrent writers and readers, then check that
nothing failed and that every acknowledged metric point is stored; prints one JSON object.

    scripts/load [--seconds 30] [--writers 8] [--readers 50] [--database-url URL] [--keep]

Starts `python -m app serve` on a free 127.0.0.1 port against a fresh SQLite file in a
temporary directory (or, with --database-url, a PostgreSQL `test`/`test_*` database on
127.0.0.1 whose public schema is reset), seeds an experiment with finished runs and
metrics and a model with versions in STAGING and PRODUCTION, then for --seconds runs:

  * writers, each with its own run, streaming logMetrics batches of 100-1,000 points,
    alternating the `points` and packed `series` forms, with a setRunTags every 4th
    batch and a registerModelVersion (all on one model) every 8th; each acknowledged
    point, tag and version is recorded;
  * readers in a closed loop (no think time) over a dashboard's mix: bestRun, a runs
    page with params, tags and metrics, a run's metricHistory or metricSeries, the
    models dashboard (versions, their runs and metrics), and events pages polled with
    a cursor.

Then it compares the points stored per run and key (count, sum of steps) with those
acknowledged, reading the database directly, and checks over GraphQL that each run's
latest metrics and tags are the last acknowledged ones and that every acknowledged model
version exists with its VERSION_REGISTERED event. Errors are counted by kind: HTTP
status, GraphQL error code, error payload typename, transport exception, failed answer
check. The server log is searched for "database is locked" and tracebacks. Exits 1 if
any check fails.

The generator is `run_load` (seed, load, verify) plus `add_server_log_checks`; the e2e test
tests/e2e/test_load.py runs the same code against its own server. Client and server share
the machine's cores, so the report carries both processes' CPU time and the client event
loop's lag, to show whether the generator kept up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from _harness import (
    REGISTER,
    Server,
    auth_headers,
    check_postgres_url,
    cpu_model,
    exit_on_sigterm,
    logger,
    package_versions,
    reset_postgres,
    rounded,
    stats_ms,
)
from sqlalchemy.engine import make_url

from app.client import AsyncClient, ClientError, Unreachable, data_of  # after _harness
from app.client import encode as body

EXPERIMENT = "load"
MODEL = "load-model"
KEYS = ("loss", "accuracy", "auc", "f1")
SEED_RUNS = 40
SEED_STEPS = 25
SEED_VERSIONS = 4
# Points per batch: 25-250 steps of every key, so 100-1,000 points.
STEPS_PER_BATCH = (25, 250)
TAGS_EVERY = 4
REGISTER_EVERY = 8
NAN_RATE = 0.005
HISTORY_FIRST = 500
SERIES_FIRST = 2000
RUNS_FIRST = 20
EVENTS_FIRST = 50
VERIFY_PAGE = 500
# Far above any latency seen here: a timeout is an error worth reporting, not a wait.
REQUEST_TIMEOUT_S = 60.0
LATENCY_STATS = ("p50", "p95", "p99", "max")

log = logger("load")


class LoadError(RuntimeError):
    pass


# ---------------------------------------------------------------- GraphQL documents

START_RUN = """
mutation Start($input: StartRunInput!) {
  startRun(input: $input) { __typename ... on StartRunSuccess { run { id } } ... on Error { code message } }
}"""

END_RUN = """
mutation End($input: EndRunInput!) {
  endRun(input: $input) { __typename ... on Error { code message } }
}"""

LOG_METRICS = """
mutation Log($input: LogMetricsInput!) {
  logMetrics(input: $input) { __typename ... on LogMetricsSuccess { count } ... on Error { code message } }
}"""

SET_TAGS = """
mutation Tags($input: SetRunTagsInput!) {
  setRunTags(input: $input) { __typename ... on Error { code message } }
}"""

TRANSITION = """
mutation Transition($input: TransitionModelVersionInput!) {
  transitionModelVersion(input: $input) { __typename ... on Error { code message } }
}"""

SET_ALIAS = """
mutation Alias($input: SetModelAliasInput!) {
  setModelAlias(input: $input) { __typename ... on Error { code message } }
}"""

BEST_RUN = """
query Best($experiment: String!, $metric: String!, $goal: MetricGoal!, $aggregate: MetricAggregate!) {
  bestRun(experiment: $experiment, metric: $metric, goal: $goal, aggregate: $aggregate) {
    id name status params { key value } metric(key: $metric) { value step min max }
  }
}"""

RUNS_PAGE = """
query Runs($experiment: String!, $first: Int!, $order: RunOrder, $filter: RunFilter) {
  runs(experiment: $experiment, first: $first, orderBy: $order, filter: $filter) {
    edges {
      cursor
      node {
        id name status startTime
        params { key value } tags { key value } metrics { key value step min max }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""

HISTORY = """
query History($id: ID!, $key: String!, $first: Int!) {
  run(id: $id) {
    id
    metricHistory(key: $key, first: $first) {
      nodes { step value timestamp } pageInfo { hasNextPage endCursor }
    }
  }
}"""

SERIES = """
query Series($id: ID!, $key: String!, $first: Int!) {
  run(id: $id) {
    id
    metricSeries(key: $key, first: $first) { key steps values timestamps pageInfo { hasNextPage } }
  }
}"""

MODELS = """
query Models {
  models(first: 10) {
    nodes {
      name
      productionVersion { version run { id name metrics { key value } } }
      latestVersion { version stage }
      aliases { alias version { version } }
      versions(first: 10) {
        nodes {
          version stage createdAt source
          run { id name experiment { name } metrics { key value step } }
        }
      }
    }
  }
}"""

EVENTS = """
query Events($model: String, $after: String, $first: Int!) {
  events(model: $model, after: $after, first: $first) {
    nodes {
      cursor type model versionNumber fromStage toStage actor at
      version { version stage run { id } }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""

RUN_STATE = """
query State($id: ID!) { run(id: $id) { id tags { key value } metrics { key step } } }"""

VERSIONS = """
query Versions($model: String!, $first: Int!, $after: String) {
  model(name: $model) {
    versions(first: $first, after: $after) {
      nodes { version run { id } } pageInfo { hasNextPage endCursor }
    }
  }
}"""

REGISTERED_EVENTS = """
query Registered($model: String!, $first: Int!, $after: String) {
  events(model: $model, types: [VERSION_REGISTERED], first: $first, after: $after) {
    nodes { versionNumber } pageInfo { hasNextPage endCursor }
  }
}"""


# ---------------------------------------------------------------- recording


@dataclass
class Acked:
    """What the server acknowledged for one run and key."""

    count: int = 0
    step_sum: int = 0
    max_step: int = -1


@dataclass
class Recorder:
    """Latencies and outcomes per operation kind, shared by every client coroutine."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    ok: Counter[str] = field(default_factory=Counter)
    errors: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    examples: dict[str, str] = field(default_factory=dict)

    def error(self, op: str, kind: str, detail: str) -> None:
        self.errors[op][kind] += 1
        self.examples.setdefault(kind, f"{op}: {detail[:400]}")

    def error_total(self) -> int:
        return sum(sum(c.values()) for c in self.errors.values())


async def call(
    client: AsyncClient, rec: Recorder | None, op: str, payload: bytes
) -> dict[str, Any] | None:
    """POST one GraphQL request; its `data` if it was a clean 200 without errors, else
    None with the error counted (rec None: raise LoadError instead, for seed and checks)."""
    started = time.perf_counter()
    try:
        response = await client.send(payload)
    except Unreachable as exc:
        cause = exc.__cause__ or exc
        return _failed(rec, op, f"transport:{type(cause).__name__}", repr(cause))
    elapsed = time.perf_counter() - started
    if rec is not None:
        rec.latencies[op].append(elapsed)
    try:
        data = data_of(response)
    except ClientError as exc:
        if response.status_code != 200:
            return _failed(rec, op, f"http:{response.status_code}", response.text)
        if not exc.errors:
            return _failed(rec, op, "bad_json", response.text)
        codes = sorted(
            {str((e.get("extensions") or {}).get("code", "NO_CODE")) for e in exc.errors}
        )
        return _failed(rec, op, f"graphql:{','.join(codes)}", json.dumps(exc.errors))
    if rec is not None:
        rec.ok[op] += 1
    return data


def _failed(rec: Recorder | None, op: str, kind: str, detail: str) -> None:
    if rec is None:
        raise LoadError(f"{op}: {kind}: {detail[:500]}")
    rec.error(op, kind, detail)
    return None


def payload_ok(rec: Recorder | None, op: str, result: dict[str, Any] | None, typename: str) -> bool:
    """Whether a mutation's union answer is the success type; an error type is counted."""
    if result is None:
        return False
    if result.get("__typename") == typename:
        return True
    _failed(rec, op, f"payload:{result.get('__typename')}", json.dumps(result))
    return False


def new_client(base_url: str, headers: dict[str, str], connections: int = 1) -> AsyncClient:
    """One keep-alive connection per simulated client, as a separate program would have;
    no proxy: all traffic stays on 127.0.0.1."""
    return AsyncClient(
        base_url,
        headers=headers,
        timeout=REQUEST_TIMEOUT_S,
        trust_env=False,
        connections=connections,
    )


async def must(
    client: AsyncClient, query: str, variables: dict[str, Any], field_name: str, typename: str
) -> dict[str, Any]:
    """A seed mutation's success payload; anything else stops the run (LoadError)."""
    data = await call(client, None, field_name, body(query, variables))
    result = (data or {}).get(field_name)
    if result is None or not payload_ok(None, field_name, result, typename):
        raise LoadError(f"{field_name}: no {typename} in {data}")
    return result


# ---------------------------------------------------------------- seed


@dataclass
class Seed:
    runs: list[str]
    writer_runs: list[str]
    versions: list[int]
    seconds: float = 0.0


def _seed_series(rng: random.Random) -> list[dict[str, Any]]:
    steps = list(range(SEED_STEPS))
    return [{"key": k, "values": [rng.random() for _ in steps], "steps": steps} for k in KEYS]


async def _seed_run(client: AsyncClient, i: int, rng: random.Random) -> str:
    started = await must(
        client,
        START_RUN,
        {
            "input": {
                "experiment": EXPERIMENT,
                "name": f"seed-{i}",
                "params": [
                    {"key": "lr", "value": str(10 ** -(1 + i % 4))},
                    {"key": "depth", "value": str(2 + i % 6)},
                ],
                "tags": [{"key": "team", "value": ("risk", "growth")[i % 2]}],
            }
        },
        "startRun",
        "StartRunSuccess",
    )
    run_id = str(started["run"]["id"])
    await must(
        client,
        LOG_METRICS,
        {"input": {"runId": run_id, "series": _seed_series(rng)}},
        "logMetrics",
        "LogMetricsSuccess",
    )
    # A few stay RUNNING, so status filters select something.
    if i % 4:
        await must(client, END_RUN, {"input": {"runId": run_id}}, "endRun", "EndRunSuccess")
    return run_id


async def seed(base_url: str, headers: dict[str, str], writers: int) -> Seed:
    """Seed runs with params, tags and metrics; a model with versions in PRODUCTION and
    STAGING and an alias; one run per writer."""
    started = time.monotonic()
    rng = random.Random(7)
    async with new_client(base_url, headers, connections=8) as client:
        runs = list(await asyncio.gather(*(_seed_run(client, i, rng) for i in range(SEED_RUNS))))
        versions = []
        for run_id in runs[:SEED_VERSIONS]:
            result = await must(
                client,
                REGISTER,
                {"input": {"model": MODEL, "runId": run_id, "source": f"s3://load/{run_id}"}},
                "registerModelVersion",
                "RegisterModelVersionSuccess",
            )
            versions.append(int(result["modelVersion"]["version"]))
        for version, stage in ((1, "STAGING"), (1, "PRODUCTION"), (2, "STAGING")):
            await must(
                client,
                TRANSITION,
                {"input": {"model": MODEL, "version": version, "stage": stage}},
                "transitionModelVersion",
                "TransitionModelVersionSuccess",
            )
        await must(
            client,
            SET_ALIAS,
            {"input": {"model": MODEL, "alias": "champion", "version": 1}},
            "setModelAlias",
            "SetModelAliasSuccess",
        )
        writer_runs = []
        for i in range(writers):
            result = await must(
                client,
                START_RUN,
                {"input": {"experiment": EXPERIMENT, "name": f"writer-{i}"}},
                "startRun",
                "StartRunSuccess",
            )
            writer_runs.append(str(result["run"]["id"]))
    return Seed(runs, writer_runs, versions, time.monotonic() - started)


# ---------------------------------------------------------------- writers


@dataclass
class WriterState:
    run_id: str
    acked: dict[str, Acked] = field(default_factory=lambda: {k: Acked() for k in KEYS})
    # Points sent whose outcome is unknown (an error, a timeout): stored or not.
    unacknowledged: int = 0
    batches: Counter[str] = field(default_factory=Counter)
    last_tag: str | None = None
    versions: list[int] = field(default_factory=list)


def _value(rng: random.Random) -> float | str:
    return "NaN" if rng.random() < NAN_RATE else round(rng.random(), 6)


def metric_batch(run_id: str, steps: range, form: str, rng: random.Random) -> bytes:
    """One logMetrics request with every key at each of `steps`."""
    if form == "points":
        now = int(time.time() * 1000)
        points = [
            {"key": k, "value": _value(rng), "step": s, "timestamp": now}
            for s in steps
            for k in KEYS
        ]
        data: dict[str, Any] = {"runId": run_id, "points": points}
    else:
        # No timestamps: the server's default (now) is exercised too.
        data = {
            "runId": run_id,
            "series": [
                {"key": k, "values": [_value(rng) for _ in steps], "steps": list(steps)}
                for k in KEYS
            ],
        }
    return body(LOG_METRICS, {"input": data})


async def writer(
    client: AsyncClient, rec: Recorder, state: WriterState, index: int, end: float
) -> None:
    rng = random.Random(1000 + index)
    step = 0
    batch = 0
    while time.monotonic() < end:
        batch += 1
        form = "points" if (batch + index) % 2 else "series"
        steps = range(step, step + rng.randint(*STEPS_PER_BATCH))
        step = steps.stop
        n_points = len(steps) * len(KEYS)
        op = f"logMetrics.{form}"
        data = await call(client, rec, op, metric_batch(state.run_id, steps, form, rng))
        result = (data or {}).get("logMetrics")
        if payload_ok(rec, op, result, "LogMetricsSuccess"):
            assert result is not None
            if result["count"] != n_points:
                rec.error(op, "check:count", f"sent {n_points}, acknowledged {result['count']}")
            state.batches[form] += 1
            for acked in state.acked.values():
                acked.count += len(steps)
                acked.step_sum += sum(steps)
                acked.max_step = steps[-1]
        else:
            state.unacknowledged += n_points
        if batch % TAGS_EVERY == 0 and time.monotonic() < end:
            value = str(step)
            tags = [{"key": "progress", "value": value}, {"key": "writer", "value": str(index)}]
            data = await call(
                client,
                rec,
                "setRunTags",
                body(SET_TAGS, {"input": {"runId": state.run_id, "tags": tags}}),
            )
            if payload_ok(rec, "setRunTags", (data or {}).get("setRunTags"), "SetRunTagsSuccess"):
                state.last_tag = value
        if batch % REGISTER_EVERY == 0 and time.monotonic() < end:
            variables = {
                "input": {"model": MODEL, "runId": state.run_id, "source": f"s3://load/{step}"}
            }
            data = await call(client, rec, "registerModelVersion", body(REGISTER, variables))
            result = (data or {}).get("registerModelVersion")
            if payload_ok(rec, "registerModelVersion", result, "RegisterModelVersionSuccess"):
                assert result is not None
                state.versions.append(int(result["modelVersion"]["version"]))


# ---------------------------------------------------------------- readers


def _check(rec: Recorder, op: str, ok: bool, what: str) -> None:
    if not ok:
        rec.error(op, f"check:{op}", what)


async def read_best_run(client: AsyncClient, rec: Recorder, rng: random.Random, **_: Any) -> None:
    metric, goal, aggregate = rng.choice(
        (("auc", "MAXIMIZE", "LAST"), ("loss", "MINIMIZE", "MIN"), ("accuracy", "MAXIMIZE", "MAX"))
    )
    variables = {"experiment": EXPERIMENT, "metric": metric, "goal": goal, "aggregate": aggregate}
    data = await call(client, rec, "bestRun", body(BEST_RUN, variables))
    if data is not None:
        _check(rec, "bestRun", data["bestRun"] is not None, f"no best run by {metric}")


async def read_runs_page(client: AsyncClient, rec: Recorder, rng: random.Random, **_: Any) -> None:
    variables: dict[str, Any] = {"experiment": EXPERIMENT, "first": RUNS_FIRST}
    choice = rng.randrange(3)
    if choice == 0:
        variables["order"] = {"metric": "auc", "direction": "DESC"}
    elif choice == 1:
        variables["filter"] = {
            "status": ["FINISHED"],
            "metrics": [{"metric": "auc", "op": "GT", "value": 0.2}],
        }
        variables["order"] = {"metric": "loss", "direction": "ASC"}
    data = await call(client, rec, "runs", body(RUNS_PAGE, variables))
    if data is not None:
        edges = data["runs"]["edges"]
        _check(rec, "runs", 0 < len(edges) <= RUNS_FIRST, f"{len(edges)} edges (variant {choice})")


def _target_run(seeded: Seed, rng: random.Random) -> str:
    # Mostly the runs being written right now: reads and appends on the same rows.
    if rng.random() < 0.7:
        return rng.choice(seeded.writer_runs)
    return rng.choice(seeded.runs)


async def read_history(
    client: AsyncClient, rec: Recorder, rng: random.Random, seeded: Seed, **_: Any
) -> None:
    variables = {"id": _target_run(seeded, rng), "key": rng.choice(KEYS), "first": HISTORY_FIRST}
    data = await call(client, rec, "metricHistory", body(HISTORY, variables))
    if data is not None:
        run = data["run"]
        _check(rec, "metricHistory", run is not None, f"run {variables['id']} not found")
        steps = [n["step"] for n in (run or {}).get("metricHistory", {}).get("nodes", [])]
        _check(rec, "metricHistory", steps == sorted(steps), "steps out of order")


async def read_series(
    client: AsyncClient, rec: Recorder, rng: random.Random, seeded: Seed, **_: Any
) -> None:
    variables = {"id": _target_run(seeded, rng), "key": rng.choice(KEYS), "first": SERIES_FIRST}
    data = await call(client, rec, "metricSeries", body(SERIES, variables))
    if data is not None:
        run = data["run"]
        _check(rec, "metricSeries", run is not None, f"run {variables['id']} not found")
        series = (run or {}).get("metricSeries") or {}
        lengths = {len(series.get(c) or []) for c in ("steps", "values", "timestamps")}
        _check(rec, "metricSeries", len(lengths) == 1, f"column lengths {lengths}")


async def read_models(client: AsyncClient, rec: Recorder, **_: Any) -> None:
    data = await call(client, rec, "models", body(MODELS, {}))
    if data is not None:
        model = next((m for m in data["models"]["nodes"] if m["name"] == MODEL), None)
        _check(
            rec,
            "models",
            model is not None and model["productionVersion"] is not None,
            "the load model or its PRODUCTION version is missing",
        )


async def read_events(
    client: AsyncClient, rec: Recorder, cursor: list[str | None], **_: Any
) -> None:
    """Poll the lifecycle stream as a CI job would: from the last cursor seen."""
    variables = {"model": MODEL, "after": cursor[0], "first": EVENTS_FIRST}
    data = await call(client, rec, "events", body(EVENTS, variables))
    if data is not None:
        end_cursor = data["events"]["pageInfo"]["endCursor"]
        if end_cursor is not None:
            cursor[0] = end_cursor


Read = Callable[..., Awaitable[None]]
READS: tuple[tuple[Read, int], ...] = (
    (read_best_run, 2),
    (read_runs_page, 2),
    (read_history, 2),
    (read_series, 2),
    (read_models, 1),
    (read_events, 1),
)


async def reader(client: AsyncClient, rec: Recorder, seeded: Seed, index: int, end: float) -> None:
    rng = random.Random(index)
    reads, weights = zip(*READS, strict=True)
    cursor: list[str | None] = [None]
    while time.monotonic() < end:
        read = rng.choices(reads, weights)[0]
        await read(client, rec, rng=rng, seeded=seeded, cursor=cursor)


async def loop_lag(end: float, samples: list[float]) -> None:
    """How late the client's event loop wakes up: large values mean the generator, not
    the server, was the bottleneck."""
    interval = 0.05
    while time.monotonic() < end:
        before = time.perf_counter()
        await asyncio.sleep(interval)
        samples.append(max(0.0, time.perf_counter() - before - interval))


# ---------------------------------------------------------------- verification


async def stored_points(database_url: str, run_ids: list[str]) -> dict[tuple[str, str], Acked]:
    """Per run and key: the points in the metric table, read from the database itself."""
    sql = (
        "SELECT run_id, key, COUNT(*), COALESCE(SUM(step), 0), COALESCE(MAX(step), -1) "
        "FROM metric WHERE run_id IN ({}) GROUP BY run_id, key"
    )
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        rows = await asyncio.to_thread(_sqlite_rows, str(url.database), sql, run_ids)
    else:
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            marks = ", ".join(f"${i + 1}" for i in range(len(run_ids)))
            rows = [tuple(r) for r in await conn.fetch(sql.format(marks), *run_ids)]
        finally:
            await conn.close()
    return {(str(r[0]), str(r[1])): Acked(int(r[2]), int(r[3]), int(r[4])) for r in rows}


def _sqlite_rows(path: str, sql: str, run_ids: list[str]) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql.format(", ".join("?" * len(run_ids))), run_ids).fetchall()
    finally:
        conn.close()


def compare_points(
    states: list[WriterState], stored: dict[tuple[str, str], Acked]
) -> dict[str, Any]:
    per_run = []
    totals = Counter[str]()
    for state in states:
        acked = sum(a.count for a in state.acked.values())
        have = sum(stored.get((state.run_id, k), Acked()).count for k in KEYS)
        mismatched = [
            k
            for k, a in state.acked.items()
            if (s := stored.get((state.run_id, k), Acked())).count < a.count
            or (s.count == a.count and s.step_sum != a.step_sum)
        ]
        missing = max(0, acked - have)
        # Points of batches that failed may or may not have been written.
        extra = max(0, have - acked)
        totals.update(acknowledged=acked, stored=have, missing=missing, extra=extra)
        totals["unacknowledged_sent"] += state.unacknowledged
        per_run.append(
            {
                "run": state.run_id,
                "acknowledged": acked,
                "stored": have,
                "batches": dict(state.batches),
                "unacknowledged_sent": state.unacknowledged,
                "keys_mismatched": mismatched,
            }
        )
    match = (
        totals["missing"] == 0
        and totals["extra"] == 0
        and not any(r["keys_mismatched"] for r in per_run)
    )
    return {**totals, "match": match, "per_run": per_run}


async def _pages(
    client: AsyncClient, query: str, variables: dict[str, Any], path: Callable[[Any], Any]
) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    after = None
    for _ in range(1000):  # bounded: 500,000 items at most
        data = await call(client, None, "verify", body(query, {**variables, "after": after}))
        page = path(data)
        nodes += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]
    raise LoadError("too many pages")


async def verify_graphql(
    client: AsyncClient, states: list[WriterState], seeded: Seed
) -> dict[str, Any]:
    """The state a reader sees after the load: latest metrics, tags, versions, events."""
    latest_wrong, tags_wrong = [], []
    for state in states:
        data = await call(client, None, "verify", body(RUN_STATE, {"id": state.run_id}))
        run = (data or {}).get("run") or {}
        steps = {m["key"]: m["step"] for m in run.get("metrics", [])}
        for key, acked in state.acked.items():
            if acked.count and steps.get(key) != acked.max_step:
                latest_wrong.append(f"{state.run_id}/{key}: {steps.get(key)} != {acked.max_step}")
        tags = {t["key"]: t["value"] for t in run.get("tags", [])}
        if state.last_tag is not None and tags.get("progress") != state.last_tag:
            tags_wrong.append(f"{state.run_id}: {tags.get('progress')} != {state.last_tag}")
    versions = await _pages(
        client,
        VERSIONS,
        {"model": MODEL, "first": VERIFY_PAGE},
        lambda d: d["model"]["versions"],
    )
    numbers = [int(v["version"]) for v in versions]
    acked_versions = seeded.versions + [v for s in states for v in s.versions]
    registered = await _pages(
        client,
        REGISTERED_EVENTS,
        {"model": MODEL, "first": VERIFY_PAGE},
        lambda d: d["events"],
    )
    event_numbers = sorted(int(e["versionNumber"]) for e in registered)
    return {
        "latest_metric_is_last_acknowledged_step": not latest_wrong,
        "latest_metric_wrong": latest_wrong[:20],
        "last_tag_stored": not tags_wrong,
        "tags_wrong": tags_wrong[:20],
        "versions_acknowledged": len(acked_versions),
        "versions_stored": len(numbers),
        "versions_acknowledged_distinct": len(set(acked_versions)) == len(acked_versions),
        "every_acknowledged_version_stored": set(acked_versions) <= set(numbers),
        "version_registered_events": len(event_numbers),
        "one_event_per_version": event_numbers == sorted(numbers),
    }


# ---------------------------------------------------------------- the load


def _summary(rec: Recorder, wall: float) -> dict[str, Any]:
    ops = sorted(set(rec.latencies) | set(rec.ok) | set(rec.errors))
    counts = {
        op: {"ok": rec.ok[op], "errors": sum(rec.errors[op].values()) if op in rec.errors else 0}
        for op in ops
    }
    requests = sum(c["ok"] + c["errors"] for c in counts.values())
    writes = sum(
        v["ok"] + v["errors"]
        for op, v in counts.items()
        if op.startswith(("logMetrics", "setRunTags", "registerModelVersion"))
    )
    return {
        "requests": {
            "total": requests,
            "per_s": rounded(requests / wall, 1) if wall else None,
            "writes": writes,
            "reads": requests - writes,
            "by_operation": counts,
            "per_s_by_operation": {
                op: rounded((c["ok"] + c["errors"]) / wall, 1) if wall else None
                for op, c in counts.items()
            },
        },
        "latency_ms": {op: stats_ms(rec.latencies[op], LATENCY_STATS) for op in ops},
        "errors": {
            "total": rec.error_total(),
            "by_operation": {op: dict(c) for op, c in rec.errors.items() if c},
            "by_kind": dict(sum((c for c in rec.errors.values()), Counter[str]())),
            "examples": rec.examples,
        },
    }


async def run_load(
    base_url: str,
    headers: dict[str, str],
    database_url: str,
    *,
    seconds: float = 30.0,
    writers: int = 8,
    readers: int = 50,
    server_cpu: Callable[[], float | None] | None = None,
) -> dict[str, Any]:
    """Seed, run `writers` and `readers` concurrent clients for `seconds`, then verify.

    The report's `checks` maps each check to whether it held (the server log's are
    added by `add_server_log_checks`); `ok` is whether all did."""
    log(f"seeding {SEED_RUNS} runs, {SEED_VERSIONS} versions, {writers} writer runs")
    seeded = await seed(base_url, headers, writers)
    rec = Recorder()
    states = [WriterState(run_id) for run_id in seeded.writer_runs]
    clients = [new_client(base_url, headers) for _ in range(writers + readers)]
    lag: list[float] = []
    try:
        log(f"load: {writers} writers, {readers} readers, {seconds:g} s")
        cpu0, client_cpu0 = server_cpu() if server_cpu else None, time.process_time()
        started = time.monotonic()
        end = started + seconds
        tasks = [writer(clients[i], rec, states[i], i, end) for i in range(writers)]
        tasks += [reader(clients[writers + i], rec, seeded, i, end) for i in range(readers)]
        # Each client finishes its request in flight: a cancelled logMetrics would leave
        # points whose fate is unknown.
        await asyncio.gather(loop_lag(end, lag), *tasks)
        wall = time.monotonic() - started
        cpu1, client_cpu1 = server_cpu() if server_cpu else None, time.process_time()
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    log(f"load done: {sum(rec.ok.values())} requests ok, {rec.error_total()} errors; verifying")
    stored = await stored_points(database_url, seeded.writer_runs)
    points = compare_points(states, stored)
    async with new_client(base_url, headers) as client:
        consistency = await verify_graphql(client, states, seeded)
    acked_points = points["acknowledged"]
    summary = _summary(rec, wall)
    server_cpu_s = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    checks = {
        "no_errors": summary["errors"]["total"] == 0,
        "every_acknowledged_point_stored": points["missing"] == 0 and points["match"],
        "no_unacknowledged_points_stored": points["extra"] == 0,
        "latest_metrics_are_last_acknowledged": consistency[
            "latest_metric_is_last_acknowledged_step"
        ],
        "last_acknowledged_tags_stored": consistency["last_tag_stored"],
        "every_acknowledged_version_stored": consistency["every_acknowledged_version_stored"]
        and consistency["versions_acknowledged_distinct"],
        "one_registered_event_per_version": consistency["one_event_per_version"],
        "some_points_written": acked_points > 0,
    }
    cores = os.cpu_count() or 1
    client_cpu_s = client_cpu1 - client_cpu0
    return {
        "config": {
            "seconds": seconds,
            "writers": writers,
            "readers": readers,
            "points_per_batch": [STEPS_PER_BATCH[0] * len(KEYS), STEPS_PER_BATCH[1] * len(KEYS)],
            "batch_forms": "points and series, alternating per writer",
            "metric_keys": list(KEYS),
            "set_run_tags_every_n_batches": TAGS_EVERY,
            "register_model_version_every_n_batches": REGISTER_EVERY,
            "reader_mix_weights": {r.__name__.removeprefix("read_"): w for r, w in READS},
            "reader_think_time_s": 0,
            "request_timeout_s": REQUEST_TIMEOUT_S,
            "client": "asyncio + httpx.AsyncClient, one keep-alive connection per client, "
            "all in one process",
        },
        "seed": {
            "runs": len(seeded.runs),
            "points_per_run": SEED_STEPS * len(KEYS),
            "model_versions": len(seeded.versions),
            "seconds": rounded(seeded.seconds, 2),
        },
        "wall_s": rounded(wall, 2),
        "throughput": {
            "requests_per_s": summary["requests"]["per_s"],
            "points_per_s": rounded(acked_points / wall, 0) if wall else None,
            "points_acknowledged": acked_points,
        },
        **summary,
        "stored_vs_acknowledged": points,
        "consistency": consistency,
        "cpu": {
            "cores": cores,
            "server_s": rounded(server_cpu_s, 2),
            "client_s": rounded(client_cpu_s, 2),
            "server_cores_busy": rounded(server_cpu_s / wall, 2) if server_cpu_s and wall else None,
            "client_cores_busy": rounded(client_cpu_s / wall, 2) if wall else None,
            "client_loop_lag_ms": stats_ms(lag, ("p50", "p99", "max")),
            "note": f"the load generator and the server share this machine's {cores} cores "
            "(and other processes may be running); latencies are measured in the client "
            "and include waiting in its event loop",
        },
        "checks": checks,
        "ok": all(checks.values()),
    }


def add_server_log_checks(report: dict[str, Any], text: str) -> None:
    """Add the server log's counts and checks to a report made by run_load."""
    locked = text.count("database is locked")
    tracebacks = text.count("Traceback")
    report["server_log"] = {
        "database_is_locked": locked,
        "tracebacks": tracebacks,
        "lines": len(text.splitlines()),
    }
    report["checks"]["no_database_is_locked_in_server_log"] = locked == 0
    report["checks"]["no_traceback_in_server_log"] = tracebacks == 0
    report["ok"] = all(report["checks"].values())


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="load duration (default 30)")
    parser.add_argument("--writers", type=int, default=8, help="concurrent writers (default 8)")
    parser.add_argument("--readers", type=int, default=50, help="concurrent readers (default 50)")
    parser.add_argument(
        "--database-url",
        help="postgresql+asyncpg://...@127.0.0.1:5432/test_load (its public schema is reset); "
        "default: a fresh SQLite file in a temporary directory",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.seconds > 3600 or args.writers < 1 or args.readers < 0:
        parser.error("--seconds in (0, 3600], --writers >= 1, --readers >= 0")
    return args


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model(),
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.database_url:
        check_postgres_url(args.database_url)
    tmp = Path(tempfile.mkdtemp(prefix="modelgraph-load-"))
    database_url = args.database_url or f"sqlite+aiosqlite:///{tmp / 'load.db'}"
    result: dict[str, Any] = {
        "load": "modelgraph scripts/load.py",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": package_versions(
            (
                "strawberry-graphql",
                "starlette",
                "uvicorn",
                "SQLAlchemy",
                "aiosqlite",
                "asyncpg",
                "httpx",
            )
        ),
        "server": {
            "database": "postgresql" if args.database_url else "sqlite",
            "database_url": database_url.split("@")[-1],
            "command": "python -m app serve --host 127.0.0.1 --port <free port>",
            "log_level": "warning",
            "workers": 1,
        },
    }
    server = Server(database_url, tmp / "server.log", error=LoadError)
    code = 1
    with exit_on_sigterm():
        try:
            if args.database_url:
                log("resetting the PostgreSQL schema")
                asyncio.run(reset_postgres(database_url))
            log(f"starting the server on {server.base_url}")
            server.start()
            result["server"]["startup_s"] = rounded(server.startup_s)
            report = asyncio.run(
                run_load(
                    server.base_url,
                    auth_headers(),
                    database_url,
                    seconds=args.seconds,
                    writers=args.writers,
                    readers=args.readers,
                    server_cpu=server.cpu_seconds,
                )
            )
            report["checks"]["server_alive_after_load"] = server.alive()
            result.update(report)
        except (Exception, KeyboardInterrupt) as exc:
            result["failure"] = f"{type(exc).__name__}: {exc}"
            log(traceback.format_exc())
        finally:
            server.stop()
            result["server"]["exit_code"] = server.returncode
            if "checks" in result:
                add_server_log_checks(result, server.log_text())
                code = 0 if result["ok"] else 1
            if code:
                result["server"]["log_tail"] = server.log_tail()
            if args.keep:
                result["server"]["directory"] = str(tmp)
            else:
                shutil.rmtree(tmp, ignore_errors=True)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
