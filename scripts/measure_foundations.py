"""Measure, on this machine, the "10x or more" differences docs/ARCHITECTURE.md reports; print JSON.

    .venv/bin/python scripts/measure_foundations.py [--quick]

(a) SQLite, 40 concurrent read-then-write transactions on one counter: the driver's
    default vs the app's write engine (BEGIN IMMEDIATE, WAL, busy_timeout). Also a deferred
    BEGIN, and BEGIN IMMEDIATE on a 10-connection pool (correctness without the one-connection
    pool). The difference is lost updates/errors vs none, not a speed ratio.
(b) Metric ingestion into a freshly migrated SQLite file: Core executemany
    `insert(Metric.__table__)` vs SQLModel `session.add_all`; plus the real
    `app.tracking.service.log_metrics`, 100 x 1,000 points.
(c) GraphQL: app.graphql.schema.schema (ParserCache + ValidationCache) vs the same schema
    built without the caches: full `schema.execute` of a dashboard query, and
    parse + validate alone.

Everything runs in temporary directories that are removed at the end; every loop is bounded
in count and time. Progress goes to stderr, one JSON object to stdout.
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
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _harness import add_root_to_path, logger, ratio, rounded

add_root_to_path()

from sqlalchemy import insert, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine  # noqa: E402

from app.db import Database, migrate  # noqa: E402
from app.db.engine import _sqlite_engine  # noqa: E402
from app.tracking import metrics as tracking_metrics  # noqa: E402
from app.tracking import service as tracking_service  # noqa: E402
from app.tracking.models import Metric  # noqa: E402

ACTOR = "measure"
METRIC_KEYS = ("loss", "accuracy", "f1", "auc", "latency_ms")


log = logger("foundations")


def _r(value: float | None, digits: int = 2) -> float | None:
    return rounded(value, digits)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round((len(ordered) - 1) * q / 100))]


class Workspace:
    """A temporary directory of SQLite files, removed at the end."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="modelgraph-foundations-"))
        self._n = 0

    def url(self, name: str, *, migrated: bool = False) -> str:
        self._n += 1
        url = f"sqlite+aiosqlite:///{self.dir / f'{self._n:02d}-{name}.db'}"
        if migrated:
            migrate.upgrade(url)
        return url

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- (a) concurrent writers


async def _counter_race(engine: AsyncEngine, n: int, limit_s: float) -> dict[str, Any]:
    """n concurrent transactions, each: read the counter, write counter + 1."""
    async with engine.begin() as conn:
        await conn.execute(
            text("CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, n INTEGER)")
        )
        await conn.execute(text("DELETE FROM counter"))
        await conn.execute(text("INSERT INTO counter (id, n) VALUES (1, 0)"))

    latencies: list[float] = []

    async def transaction() -> None:
        started = time.perf_counter()
        async with engine.begin() as conn:
            value = (await conn.execute(text("SELECT n FROM counter WHERE id = 1"))).scalar_one()
            await conn.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": value + 1})
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with asyncio.timeout(limit_s):
        outcomes = await asyncio.gather(*(transaction() for _ in range(n)), return_exceptions=True)
    wall = time.perf_counter() - started
    async with engine.connect() as conn:
        final = (await conn.execute(text("SELECT n FROM counter WHERE id = 1"))).scalar_one()
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    committed = n - len(failures)
    messages = Counter(
        str(getattr(f, "orig", f)).splitlines()[0][:80] or type(f).__name__ for f in failures
    )
    return {
        "transactions": n,
        "committed": committed,
        "errors": len(failures),
        "error_messages": dict(messages),
        "final_counter": final,
        "lost_updates": committed - final,
        "wall_ms": _r(wall * 1000),
        "txn_per_s": round(committed / wall) if wall else None,
        "latency_p50_ms": _r((pct(latencies, 50) or 0) * 1000),
        "latency_p99_ms": _r((pct(latencies, 99) or 0) * 1000),
    }


async def measure_concurrent_writers(ws: Workspace, n: int, repeats: int) -> dict[str, Any]:
    busy_ms = 5000

    def driver_default(url: str) -> tuple[AsyncEngine, Callable[[], Awaitable[None]]]:
        engine = create_async_engine(url)
        return engine, engine.dispose

    def deferred(url: str) -> tuple[AsyncEngine, Callable[[], Awaitable[None]]]:
        db = Database(url, busy_timeout_ms=busy_ms)
        return db.read_engine, db.dispose  # the app's reader: WAL, busy_timeout, BEGIN

    def app_writer(url: str) -> tuple[AsyncEngine, Callable[[], Awaitable[None]]]:
        db = Database(url, busy_timeout_ms=busy_ms)
        return db.write_engine, db.dispose  # BEGIN IMMEDIATE, WAL, busy_timeout, 1 connection

    def immediate_pool10(url: str) -> tuple[AsyncEngine, Callable[[], Awaitable[None]]]:
        engine = _sqlite_engine(url, busy_timeout_ms=busy_ms, writer=True, pool_size=10)
        return engine, engine.dispose

    cases = {
        "driver_default": (
            "plain create_async_engine('sqlite+aiosqlite://'): pysqlite's implicit "
            "transactions (no BEGIN before the SELECT), rollback journal, 5 s timeout",
            driver_default,
        ),
        "begin_deferred_wal_busy_timeout": (
            "Database(url).read_engine: BEGIN (deferred), WAL, busy_timeout 5 s, pool 5+10",
            deferred,
        ),
        "begin_immediate_wal_busy_timeout": (
            "Database(url).write_engine (the app's): BEGIN IMMEDIATE, WAL, busy_timeout 5 s, "
            "one connection",
            app_writer,
        ),
        "begin_immediate_wal_busy_timeout_pool10": (
            "app.db.engine._sqlite_engine(writer=True, pool_size=10): BEGIN IMMEDIATE with 10 "
            "connections, so correctness does not come from the one-connection pool",
            immediate_pool10,
        ),
    }
    out: dict[str, Any] = {"concurrent_transactions": n, "repeats": repeats, "cases": {}}
    for name, (description, make) in cases.items():
        runs = []
        for _ in range(repeats):
            engine, dispose = make(ws.url(f"counter-{name}"))
            try:
                runs.append(await _counter_race(engine, n, limit_s=60))
            finally:
                await dispose()
        out["cases"][name] = {
            "how": description,
            "committed": [r["committed"] for r in runs],
            "errors": [r["errors"] for r in runs],
            "lost_updates": [r["lost_updates"] for r in runs],
            "final_counter": [r["final_counter"] for r in runs],
            "error_messages": dict(sum((Counter(r["error_messages"]) for r in runs), Counter())),
            "txn_per_s": [r["txn_per_s"] for r in runs],
            "latency_p99_ms": [r["latency_p99_ms"] for r in runs],
        }
        log(
            f"(a) {name}: {out['cases'][name]['committed']} committed, "
            f"{out['cases'][name]['lost_updates']} lost, {out['cases'][name]['errors']} errors"
        )

    bad = out["cases"]["driver_default"]
    good = out["cases"]["begin_immediate_wal_busy_timeout"]
    bad_correct = sum(bad["final_counter"])
    good_correct = sum(good["final_counter"])
    out["summary"] = {
        "claim": "driver default: updates silently lost; BEGIN IMMEDIATE + WAL + busy_timeout: none",
        "driver_default_lost_updates_total": sum(bad["lost_updates"]),
        "driver_default_errors_total": sum(bad["errors"]),
        "app_writer_lost_updates_total": sum(good["lost_updates"]),
        "app_writer_errors_total": sum(good["errors"]),
        "increments_applied_app_writer_over_driver_default": ratio(good_correct, bad_correct),
        "note": "lost updates vs none has no finite ratio; the ratio above is correct "
        "increments applied (final counter) by the app's writer over the driver default",
    }
    return out


# ---------------------------------------------------------------- (b) ingestion


def _metric_rows(run_id: str, n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    base_ms = 1_700_000_000_000
    k = len(METRIC_KEYS)
    return [
        {
            "run_id": run_id,
            "key": METRIC_KEYS[i % k],
            "value": rng.random(),
            "is_nan": False,
            "step": i // k,
            "timestamp": base_ms + i // k,
        }
        for i in range(n)
    ]


async def _fresh_run(db: Database) -> str:
    async with db.unit_of_work() as session:
        run = await tracking_service.start_run(session, experiment="ingest", actor=ACTOR)
    return run.id


async def _count(db: Database) -> int:
    async with db.read() as session:
        return int((await session.execute(text("SELECT count(*) FROM metric"))).scalar_one())


async def measure_ingestion(ws: Workspace, n_rows: int, budget_s: float) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": n_rows, "database": "freshly migrated SQLite file per method"}

    # Core executemany, as log_metrics does.
    db = Database(ws.url("ingest-core", migrated=True))
    try:
        rows = _metric_rows(await _fresh_run(db), n_rows)
        started = time.perf_counter()
        async with db.unit_of_work() as session:
            await session.execute(insert(Metric.__table__), rows)
        core_s = time.perf_counter() - started
        stored = await _count(db)
    finally:
        await db.dispose()
    out["core_insert_executemany"] = {
        "rows": stored,
        "seconds": _r(core_s, 3),
        "rows_per_s": round(stored / core_s),
        "how": "session.execute(insert(Metric.__table__), rows) in one unit_of_work",
    }
    log(f"(b) Core executemany: {out['core_insert_executemany']['rows_per_s']} rows/s")

    # SQLModel add_all, in chunks so the time bound can stop it between flushes.
    db = Database(ws.url("ingest-orm", migrated=True))
    try:
        rows = _metric_rows(await _fresh_run(db), n_rows)
        chunk = max(1, n_rows // 10)
        done = 0
        end = time.monotonic() + budget_s
        started = time.perf_counter()
        async with db.unit_of_work() as session:
            for k in range(0, n_rows, chunk):
                if time.monotonic() > end:
                    break
                session.add_all([Metric(**r) for r in rows[k : k + chunk]])
                await session.flush()
                done += len(rows[k : k + chunk])
        orm_s = time.perf_counter() - started
        stored = await _count(db)
    finally:
        await db.dispose()
    out["sqlmodel_add_all"] = {
        "rows": stored,
        "seconds": _r(orm_s, 3),
        "rows_per_s": round(stored / orm_s),
        "how": f"session.add_all([Metric(**row)...]) + flush per {chunk} rows, one unit_of_work "
        "(object construction included)",
        "truncated": stored < n_rows,
    }
    log(f"(b) SQLModel add_all: {out['sqlmodel_add_all']['rows_per_s']} rows/s")

    # The real service function: 100 batches of 1,000 points, one unit of work each.
    db = Database(ws.url("ingest-service", migrated=True))
    try:
        run_id = await _fresh_run(db)
        batch = 1000
        batches = [
            [
                tracking_metrics.MetricPoint(r["key"], r["value"], r["step"], r["timestamp"])
                for r in _metric_rows(run_id, batch, seed=b)
            ]
            for b in range(max(1, n_rows // batch))
        ]
        end = time.monotonic() + budget_s
        latencies = []
        started = time.perf_counter()
        for points in batches:
            if time.monotonic() > end:
                break
            t0 = time.perf_counter()
            async with db.unit_of_work() as session:
                await tracking_metrics.log_metrics(
                    session, actor="measure", run_id=run_id, points=points
                )
            latencies.append(time.perf_counter() - t0)
        service_s = time.perf_counter() - started
        stored = await _count(db)
    finally:
        await db.dispose()
    out["service_log_metrics"] = {
        "batches": len(latencies),
        "points_per_batch": batch,
        "points": stored,
        "seconds": _r(service_s, 3),
        "points_per_s": round(stored / service_s),
        "batch_ms_p50": _r((pct(latencies, 50) or 0) * 1000),
        "how": "app.tracking.service.log_metrics in its own db.unit_of_work() per batch "
        "(history insert + latest_metric upsert + commit)",
        "truncated": len(latencies) < len(batches),
    }
    log(f"(b) service log_metrics: {out['service_log_metrics']['points_per_s']} points/s")

    # The floor, for context: the sqlite3 module alone, same table and index.
    path = ws.dir / "floor.db"
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute(
            "CREATE TABLE metric (id INTEGER PRIMARY KEY, run_id VARCHAR(32) NOT NULL, "
            "key VARCHAR(250) NOT NULL, value FLOAT, is_nan BOOLEAN NOT NULL, "
            "step BIGINT NOT NULL, timestamp BIGINT NOT NULL)"
        )
        con.execute("CREATE INDEX ix_metric_history ON metric (run_id, key, step, timestamp)")
        tuples = [
            (r["run_id"], r["key"], r["value"], r["is_nan"], r["step"], r["timestamp"])
            for r in _metric_rows("0" * 32, n_rows)
        ]
        started = time.perf_counter()
        with con:
            con.executemany(
                "INSERT INTO metric (run_id, key, value, is_nan, step, timestamp) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                tuples,
            )
        floor_s = time.perf_counter() - started
    finally:
        con.close()
    out["context_sqlite3_executemany_floor"] = {"rows_per_s": round(n_rows / floor_s)}

    core = out["core_insert_executemany"]["rows_per_s"]
    orm = out["sqlmodel_add_all"]["rows_per_s"]
    out["summary"] = {
        "claim": "Core executemany >= 10x SQLModel add_all",
        "core_over_add_all": ratio(core, orm),
        "service_points_per_s_over_add_all_rows_per_s": ratio(
            out["service_log_metrics"]["points_per_s"], orm
        ),
    }
    return out


# ---------------------------------------------------------------- (c) GraphQL caches

DASHBOARD = """
query Dashboard($metric: String!) {
  experiments(first: 10) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id
      name
      description
      createdAt
      tags { key value }
      runCount
      bestRun(metric: $metric, goal: MAXIMIZE) {
        id
        name
        metric(key: $metric) { value step min max }
      }
      runs(first: 5, orderBy: {metric: $metric, direction: DESC}) {
        pageInfo { hasNextPage endCursor }
        edges {
          cursor
          node {
            id
            name
            status
            startTime
            endTime
            params { key value }
            tags { key value }
            metrics { key value step timestamp min max }
            modelVersions { version stage model { name } }
          }
        }
      }
    }
  }
  models(first: 10) {
    nodes {
      name
      description
      updatedAt
      tags { key value }
      productionVersion { version stage source run { id name } aliases }
      latestVersion { version stage createdAt }
      aliases { alias version { version stage } }
      versions(first: 5) {
        nodes {
          version
          stage
          createdAt
          transitions { fromStage toStage actor reason at }
        }
      }
      transitions(first: 5) { nodes { fromStage toStage at modelVersion { version } } }
    }
  }
}"""


def build_uncached_schema() -> Any:
    """app.graphql.schema.build_schema() without ParserCache and ValidationCache."""
    import strawberry
    from strawberry.schema.config import StrawberryConfig

    from app.graphql import errors
    from app.graphql.registry import types as registry_types
    from app.graphql.scalars import SCALAR_MAP
    from app.graphql.schema import Mutation, Query

    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        types=[errors.NotFound, errors.InvalidInput, errors.AlreadyExists, errors.Conflict],
        extensions=[errors.ErrorPolicy],
        exception_handlers=[*errors.HANDLERS, *registry_types.HANDLERS],
        config=StrawberryConfig(auto_camel_case=True, scalar_map=SCALAR_MAP),
    )


async def _seed_dashboard(db: Database) -> dict[str, int]:
    """A little of everything the dashboard query touches."""
    from app.registry import catalog, lifecycle
    from app.registry.stages import Stage
    from app.tracking.models import RunStatus

    rng = random.Random(5)
    run_ids = []
    for e in range(3):
        for r in range(4):
            async with db.unit_of_work() as session:
                run = await tracking_service.start_run(
                    session,
                    experiment=f"exp-{e}",
                    name=f"run-{e}-{r}",
                    params={"lr": str(rng.choice([0.01, 0.1])), "depth": str(r + 2)},
                    tags={"team": "ml"},
                    actor=ACTOR,
                )
                points = [
                    tracking_metrics.MetricPoint(key, rng.random(), step)
                    for step in range(10)
                    for key in METRIC_KEYS
                ]
                await tracking_metrics.log_metrics(
                    session, actor="measure", run_id=run.id, points=points
                )
                await tracking_service.end_run(
                    session, run_id=run.id, status=RunStatus.FINISHED, actor=ACTOR
                )
                run_ids.append(run.id)
    for m in range(2):
        async with db.unit_of_work() as session:
            for v in range(3):
                await catalog.register_version(
                    session, model=f"model-{m}", run_id=run_ids[m * 3 + v], actor=ACTOR
                )
            for stage in (Stage.STAGING, Stage.PRODUCTION):
                await lifecycle.transition_version(
                    session, model=f"model-{m}", version=1, stage=stage, actor=ACTOR
                )
            await lifecycle.transition_version(
                session, model=f"model-{m}", version=2, stage=Stage.STAGING, actor=ACTOR
            )
            await catalog.set_alias(
                session, model=f"model-{m}", alias="champion", version=1, actor=ACTOR
            )
    return {"experiments": 4, "runs": len(run_ids), "models": 2, "versions": 6}


async def _time_execute(
    schema: Any, make_context: Callable[[], Any], ops: int, end: float
) -> tuple[list[float], float]:
    """Per-op wall times, and the process CPU seconds they took (all threads)."""
    out = []
    cpu = time.process_time()
    for _ in range(ops):
        if time.monotonic() > end:
            break
        started = time.perf_counter()
        result = await schema.execute(
            DASHBOARD, variable_values={"metric": "accuracy"}, context_value=make_context()
        )
        out.append(time.perf_counter() - started)
        if result.errors:
            raise RuntimeError(f"dashboard query failed: {result.errors}")
    return out, time.process_time() - cpu


def _time_calls(fn: Callable[[], Any], n: int, end: float) -> list[float]:
    out = []
    for _ in range(n):
        if time.monotonic() > end:
            break
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def _us(seconds: list[float], cpu_s: float | None = None) -> dict[str, Any]:
    out = {
        "n": len(seconds),
        "median_us": _r(statistics.median(seconds) * 1e6, 1) if seconds else None,
        "mean_us": _r(statistics.fmean(seconds) * 1e6, 1) if seconds else None,
        "p95_us": _r((pct(seconds, 95) or 0) * 1e6, 1) if seconds else None,
    }
    if cpu_s is not None and seconds:
        out["cpu_us_per_op"] = _r(cpu_s / len(seconds) * 1e6, 1)
    return out


async def _compare_execute(
    cached_schema: Any,
    plain_schema: Any,
    make_context: Callable[[], Any],
    ops: int,
    budget_s: float,
) -> dict[str, Any]:
    """The dashboard query through both schemas, in interleaved rounds (drift hits both)."""
    for schema in (cached_schema, plain_schema):  # warm-up; fills the caches
        await _time_execute(schema, make_context, 5, time.monotonic() + 10)
    end = time.monotonic() + budget_s
    rounds = 5
    cached_t: list[float] = []
    plain_t: list[float] = []
    cached_cpu = plain_cpu = 0.0
    for _ in range(rounds):
        times, cpu = await _time_execute(cached_schema, make_context, ops // rounds, end)
        cached_t += times
        cached_cpu += cpu
        times, cpu = await _time_execute(plain_schema, make_context, ops // rounds, end)
        plain_t += times
        plain_cpu += cpu
    with_caches, without = _us(cached_t, cached_cpu), _us(plain_t, plain_cpu)
    return {
        "with_caches": with_caches,
        "without_caches": without,
        "without_over_with_wall": ratio(without["median_us"], with_caches["median_us"]),
        "without_over_with_cpu": ratio(
            without.get("cpu_us_per_op"), with_caches.get("cpu_us_per_op")
        ),
        "truncated": len(cached_t) < ops // rounds * rounds,
    }


async def measure_graphql(
    ws: Workspace, ops_empty: int, ops_seeded: int, budget_s: float
) -> dict[str, Any]:
    from graphql import parse, specified_rules
    from strawberry.extensions import ParserCache, ValidationCache
    from strawberry.schema.schema import validate_document

    from app.config import Settings
    from app.graphql.context import Context
    from app.graphql.schema import schema as cached_schema

    plain_schema = build_uncached_schema()
    out: dict[str, Any] = {
        "schemas_have_same_sdl": plain_schema.as_str() == cached_schema.as_str(),
        "query_chars": len(DASHBOARD),
        "how": "await schema.execute(query, variable_values, context_value=a fresh Context per "
        "op) against a migrated SQLite file; wall time per op and process CPU (all threads) "
        "per op; includes the resolvers' SQL",
    }
    url = ws.url("graphql", migrated=True)
    db = Database(url)
    settings = Settings(database_url=url)

    def make_context() -> Context:  # one per operation, as per request in the server
        return Context(db=db, settings=settings)

    try:
        # An empty database (only the migration's Default experiment): little SQL.
        out["execute_dashboard_empty_db"] = await _compare_execute(
            cached_schema, plain_schema, make_context, ops_empty, budget_s / 3
        )
        log(
            f"(c) execute, empty db: {out['execute_dashboard_empty_db']['without_over_with_wall']}x"
        )

        out["seeded_data"] = await _seed_dashboard(db)
        check = await cached_schema.execute(
            DASHBOARD, variable_values={"metric": "accuracy"}, context_value=make_context()
        )
        if check.errors:
            raise RuntimeError(f"dashboard query failed: {check.errors}")
        out["seeded_result_bytes"] = len(json.dumps(check.data))
        out["execute_dashboard_seeded_db"] = await _compare_execute(
            cached_schema, plain_schema, make_context, ops_seeded, budget_s / 2
        )
        log(
            f"(c) execute, seeded db: {out['execute_dashboard_seeded_db']['without_over_with_wall']}x"
        )
    finally:
        await db.dispose()

    # Parse + validate alone, as strawberry does it per request.
    graphql_schema = cached_schema._schema
    rules = tuple(specified_rules)
    cached_parse = ParserCache(maxsize=1024).cached_parse_document
    cached_validate = ValidationCache(maxsize=1024).cached_validate_document

    def uncached() -> None:
        document = parse(DASHBOARD)
        if validate_document(graphql_schema, document, rules):
            raise RuntimeError("dashboard query does not validate")

    def cached() -> None:
        document = cached_parse(DASHBOARD)
        if cached_validate(graphql_schema, document, rules):
            raise RuntimeError("dashboard query does not validate")

    def parse_only() -> None:
        parse(DASHBOARD)

    cached()  # fill
    end = time.monotonic() + budget_s / 4
    n = max(ops_empty, 100)
    uncached_t = _time_calls(uncached, n, end)
    cached_pv_t = _time_calls(cached, n, end)
    parse_t = _time_calls(parse_only, n, end)
    pv = {
        "uncached": _us(uncached_t),
        "uncached_parse_only": _us(parse_t),
        "cached": _us(cached_pv_t),
        "uncached_over_cached": ratio(
            statistics.median(uncached_t) if uncached_t else None,
            statistics.median(cached_pv_t) if cached_pv_t else None,
        ),
        "how": "graphql-core parse + strawberry validate_document (specified_rules + "
        "strawberry's two rules) vs the ParserCache/ValidationCache lookups; a cache hit still "
        "hashes the whole DocumentNode (frozen dataclasses)",
    }
    out["parse_and_validate"] = pv
    log(f"(c) parse+validate: {pv['uncached_over_cached']}x")

    empty, seeded = out["execute_dashboard_empty_db"], out["execute_dashboard_seeded_db"]
    out["summary"] = {
        "claim": "validation dominates a request; ParserCache + ValidationCache remove it",
        "parse_validate_uncached_over_cached": pv["uncached_over_cached"],
        "execute_empty_db_without_over_with_caches_wall": empty["without_over_with_wall"],
        "execute_empty_db_without_over_with_caches_cpu": empty["without_over_with_cpu"],
        "execute_seeded_db_without_over_with_caches_wall": seeded["without_over_with_wall"],
        "execute_seeded_db_without_over_with_caches_cpu": seeded["without_over_with_cpu"],
        "parse_validate_us_vs_seeded_execute_us": [
            pv["uncached"]["median_us"],
            seeded["with_caches"]["median_us"],
        ],
    }
    return out


# ---------------------------------------------------------------- main


async def run(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    ws = Workspace()
    result: dict[str, Any] = {
        "script": "scripts/measure_foundations.py",
        "mode": "quick" if quick else "full",
        "machine": {
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "sqlite": sqlite3.sqlite_version,
        },
    }
    errors: list[dict[str, str]] = []
    sections: list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]] = [
        (
            "a_sqlite_concurrent_read_then_write",
            lambda: measure_concurrent_writers(ws, n=40, repeats=1 if quick else 3),
        ),
        (
            "b_metric_ingestion",
            lambda: measure_ingestion(ws, n_rows=10_000 if quick else 100_000, budget_s=45),
        ),
        (
            "c_graphql_parser_validation_caches",
            lambda: measure_graphql(
                ws,
                ops_empty=50 if quick else 300,
                ops_seeded=20 if quick else 100,
                budget_s=15 if quick else 45,
            ),
        ),
    ]
    try:
        for name, section in sections:
            started = time.perf_counter()
            try:
                result[name] = await asyncio.wait_for(section(), timeout=120)
            except Exception as exc:  # report and go on with the next claim
                errors.append({"section": name, "error": f"{type(exc).__name__}: {exc}"})
                log(f"{name} failed: {exc!r}")
            else:
                result[name]["section_seconds"] = _r(time.perf_counter() - started, 1)
    finally:
        ws.close()
    result["ratios"] = {
        "a_lost_updates_driver_default": (
            result.get("a_sqlite_concurrent_read_then_write", {}).get("summary", {})
        ).get("driver_default_lost_updates_total"),
        "a_lost_updates_app_writer": (
            result.get("a_sqlite_concurrent_read_then_write", {}).get("summary", {})
        ).get("app_writer_lost_updates_total"),
        "a_increments_applied_app_writer_over_driver_default": (
            result.get("a_sqlite_concurrent_read_then_write", {}).get("summary", {})
        ).get("increments_applied_app_writer_over_driver_default"),
        "b_core_executemany_over_sqlmodel_add_all": (
            result.get("b_metric_ingestion", {}).get("summary", {})
        ).get("core_over_add_all"),
        "c_parse_validate_uncached_over_cached": (
            result.get("c_graphql_parser_validation_caches", {}).get("summary", {})
        ).get("parse_validate_uncached_over_cached"),
        "c_execute_empty_db_without_over_with_caches": (
            result.get("c_graphql_parser_validation_caches", {}).get("summary", {})
        ).get("execute_empty_db_without_over_with_caches_wall"),
        "c_execute_seeded_db_without_over_with_caches": (
            result.get("c_graphql_parser_validation_caches", {}).get("summary", {})
        ).get("execute_seeded_db_without_over_with_caches_wall"),
    }
    result["errors"] = errors
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args(argv)
    started = time.monotonic()
    result = asyncio.run(run(args))
    result["duration_s"] = _r(time.monotonic() - started, 1)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
