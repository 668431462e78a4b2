"""Crash safety: writers stream logMetrics batches (and registry moves) at a real server,
which is SIGKILLed mid-stream and restarted on the same database. Every acknowledged write
is there; every write in flight at the kill is there completely or not at all."""

import asyncio
import itertools
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from app.client import AsyncClient, Unreachable
from app.db import Database
from tests.e2e.conftest import Auth, Server
from tests.integrity import integrity_problems

WRITERS = 4
SERIES_POINTS = 2000  # packed `series` form, key "loss": the form large batches use
POINT_OBJECTS = 200  # `points` form, key "acc": the same batch spans two keys and two forms
BATCH_POINTS = SERIES_POINTS + POINT_OBJECTS
ACKS_BEFORE_KILL = 16
# Probes for an open write transaction before the kill; a bound, not a wait on time.
PROBES = 5000
T0 = 1_700_000_000_000

START = """
mutation($name: String!) {
  startRun(input: {experiment: "crash", name: $name}) { ... on StartRunSuccess { run { id } } }
}
"""

LOG = """
mutation($run: ID!, $series: [MetricSeriesInput!], $points: [MetricPointInput!]) {
  logMetrics(input: {runId: $run, series: $series, points: $points}) {
    __typename ... on LogMetricsSuccess { count } ... on Error { code message }
  }
}
"""

SERIES = """
query($run: ID!, $key: String!, $after: String) {
  run(id: $run) {
    metricSeries(key: $key, first: 10000, after: $after) {
      steps values timestamps pageInfo { hasNextPage endCursor }
    }
  }
}
"""

LATEST = """
query($run: ID!) { run(id: $run) { metrics { key value step timestamp } } }
"""

REGISTER = """
mutation($run: ID!) {
  registerModelVersion(input: {model: "crash-model", runId: $run}) {
    __typename ... on RegisterModelVersionSuccess { modelVersion { version } }
    ... on Error { code message }
  }
}
"""

TRANSITION = """
mutation($version: Int!, $stage: Stage!) {
  transitionModelVersion(input: {model: "crash-model", version: $version, stage: $stage}) {
    __typename ... on Error { code message }
  }
}
"""

REGISTRY = """
{
  model(name: "crash-model") {
    versions(first: 500) { nodes { version } pageInfo { hasNextPage } }
    transitions(first: 500) { nodes { toStage modelVersion { version } } pageInfo { hasNextPage } }
  }
}
"""

Point = tuple[int, Any, int]  # step, value as JSON ("NaN" for NaN), timestamp


def batch_points(writer: int, batch: int) -> dict[str, list[Point]]:
    """What batch `batch` of `writer` logs, per key: its own step range, so every stored
    point names the batch it came from, and values no other batch has."""
    base = batch * BATCH_POINTS
    loss: list[Point] = [
        (base + j, "NaN" if j == 7 else writer + batch / 1000 + j / 2**20, T0 + base + j)
        for j in range(SERIES_POINTS)
    ]
    acc: list[Point] = [
        (base + k, -writer - batch / 1000 - k / 2**12, T0 + base + k) for k in range(POINT_OBJECTS)
    ]
    return {"loss": loss, "acc": acc}


def log_variables(run: str, writer: int, batch: int) -> dict[str, Any]:
    points = batch_points(writer, batch)
    steps, values, stamps = zip(*points["loss"], strict=True)
    return {
        "run": run,
        "series": [
            {
                "key": "loss",
                "steps": list(steps),
                "values": list(values),
                "timestamps": list(stamps),
            }
        ],
        "points": [
            {"key": "acc", "step": s, "value": v, "timestamp": t} for s, v, t in points["acc"]
        ],
    }


@dataclass
class Stream:
    """What the clients saw: which writes were acknowledged, which were cut off by the kill."""

    acked: set[tuple[int, int]] = field(default_factory=set)  # (writer, batch)
    in_flight: set[tuple[int, int]] = field(default_factory=set)
    registered: set[int] = field(default_factory=set)  # acknowledged version numbers
    moved: set[tuple[int, str]] = field(default_factory=set)  # acknowledged (version, stage)
    registry_in_flight: int = 0
    enough: asyncio.Event = field(default_factory=asyncio.Event)
    killed: bool = False


async def post(client: AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    # Before the kill nothing may fail: a refusal or an error raises, a bug, not the crash.
    return await client.execute(query, variables)


async def write_metrics(base: str, stream: Stream, writer: int, run: str) -> None:
    async with AsyncClient(base, token=Auth.token, timeout=120) as client:
        for batch in itertools.count():
            if stream.killed:
                return
            try:
                data = await post(client, LOG, **log_variables(run, writer, batch))
            except Unreachable:
                # The server only drops connections because it was killed.
                assert stream.killed
                stream.in_flight.add((writer, batch))
                return
            assert data["logMetrics"] == {"__typename": "LogMetricsSuccess", "count": BATCH_POINTS}
            stream.acked.add((writer, batch))
            if len(stream.acked) >= ACKS_BEFORE_KILL:
                stream.enough.set()


async def write_registry(base: str, stream: Stream, run: str) -> None:
    """Register versions and walk each to PRODUCTION (archiving the one before), until the
    kill: small write transactions interleaved with the metric batches."""
    async with AsyncClient(base, token=Auth.token, timeout=120) as client:
        try:
            while not stream.killed:
                data = await post(client, REGISTER, run=run)
                version = data["registerModelVersion"]["modelVersion"]["version"]
                stream.registered.add(version)
                for stage in ("STAGING", "PRODUCTION"):
                    if stream.killed:
                        return
                    data = await post(client, TRANSITION, version=version, stage=stage)
                    assert data["transitionModelVersion"]["__typename"] == (
                        "TransitionModelVersionSuccess"
                    ), data
                    stream.moved.add((version, stage))
        except Unreachable:
            assert stream.killed
            stream.registry_in_flight += 1


def sqlite_writer_busy(path: str) -> bool:
    """Spin until SQLite's write lock is held (the server is inside a write transaction)."""
    con = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        for _ in range(PROBES):
            try:
                con.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:  # database is locked: by the server's writer
                return True
            con.execute("ROLLBACK")
            # Let the server's writer (which backs off when it finds us holding the lock) in.
            time.sleep(0.0005)
        return False
    finally:
        con.close()


async def postgres_writer_busy(url: str) -> bool:
    """Poll until some other backend's transaction has written (it has an xid)."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        for _ in range(PROBES):
            writing = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
            )
            if writing:
                return True
        return False
    finally:
        await conn.close()


async def kill_mid_write(server: Server, stream: Stream, database_url: str) -> tuple[bool, str]:
    await stream.enough.wait()
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        busy = await asyncio.to_thread(sqlite_writer_busy, url.database or "")
    else:
        busy = await postgres_writer_busy(database_url)
    # SIGKILL and the flag in one step of the event loop: every writer is then suspended in
    # a request it already sent, and none starts another.
    server.proc.kill()
    stream.killed = True
    return busy, await asyncio.to_thread(server.kill)


async def read_points(client: AsyncClient, run: str, key: str) -> list[Point]:
    points: list[Point] = []
    after = None
    while True:
        page = (await post(client, SERIES, run=run, key=key, after=after))["run"]["metricSeries"]
        points += zip(page["steps"], page["values"], page["timestamps"], strict=True)
        if not page["pageInfo"]["hasNextPage"]:
            return points
        after = page["pageInfo"]["endCursor"]


async def test_sigkill_mid_stream_keeps_acknowledged_batches_and_no_partial_one(
    start_server: Callable[..., Server], database_url: str, db: Database
) -> None:
    # given a server and a run per writer
    server = await asyncio.to_thread(start_server)
    async with AsyncClient(server.base, token=Auth.token) as client:
        runs = [
            (await post(client, START, name=f"writer-{w}"))["startRun"]["run"]["id"]
            for w in range(WRITERS)
        ]

    # when writers stream batches and the server is SIGKILLed inside a write transaction,
    # after some batches were acknowledged and while every writer waits on one
    stream = Stream()
    *_, (busy, output) = await asyncio.gather(
        *(write_metrics(server.base, stream, w, run) for w, run in enumerate(runs)),
        write_registry(server.base, stream, runs[0]),
        kill_mid_write(server, stream, database_url),
    )
    assert "Traceback" not in output, output
    # The kill cut requests off: it landed mid-stream, not after it.
    assert stream.in_flight, stream
    assert len(stream.acked) >= ACKS_BEFORE_KILL

    # and a new server starts on the same database
    server = await asyncio.to_thread(start_server)
    async with AsyncClient(server.base, token=Auth.token, timeout=60) as client:
        # then every batch is all there or not there at all, and every acknowledged one is
        present: set[tuple[int, int]] = set()
        for w, run in enumerate(runs):
            stored = {key: await read_points(client, run, key) for key in ("loss", "acc")}
            for key, points in stored.items():
                repeats = [s for s, n in Counter(p[0] for p in points).items() if n > 1]
                assert not repeats, f"writer {w} {key}: steps stored twice: {repeats[:10]}"
            for batch in sorted({p[0] // BATCH_POINTS for p in stored["loss"] + stored["acc"]}):
                expected = batch_points(w, batch)
                got = {
                    key: [p for p in points if p[0] // BATCH_POINTS == batch]
                    for key, points in stored.items()
                }
                assert got == expected, (
                    f"writer {w} batch {batch} is partial or wrong: "
                    f"{ {k: len(v) for k, v in got.items()} } of "
                    f"{ {k: len(v) for k, v in expected.items()} } points"
                )
                present.add((w, batch))
        assert stream.acked <= present, f"acknowledged but lost: {stream.acked - present}"
        assert present <= stream.acked | stream.in_flight, present - stream.acked - stream.in_flight

        # and the latest values are those of the last batch kept
        for w, run in enumerate(runs):
            last = max(b for writer, b in present if writer == w)
            expected = batch_points(w, last)
            latest = {
                m["key"]: (m["step"], m["value"], m["timestamp"])
                for m in (await post(client, LATEST, run=run))["run"]["metrics"]
            }
            assert latest == {key: points[-1] for key, points in expected.items()}

        # and every acknowledged registration and move is there, and nothing half-made
        model = (await post(client, REGISTRY))["model"]
        assert not model["versions"]["pageInfo"]["hasNextPage"]
        assert not model["transitions"]["pageInfo"]["hasNextPage"]
        versions = {v["version"] for v in model["versions"]["nodes"]}
        moves = {
            (t["modelVersion"]["version"], t["toStage"]) for t in model["transitions"]["nodes"]
        }
        assert stream.registered <= versions
        assert len(versions) <= len(stream.registered) + stream.registry_in_flight
        assert stream.moved <= moves
        assert await integrity_problems(db) == []

        # and the restarted server takes and serves new batches
        batch = max(b for _, b in stream.acked | stream.in_flight) + 1
        data = await post(client, LOG, **log_variables(runs[0], 0, batch))
        assert data["logMetrics"] == {"__typename": "LogMetricsSuccess", "count": BATCH_POINTS}
        tail = {
            key: [
                p for p in await read_points(client, runs[0], key) if p[0] // BATCH_POINTS == batch
            ]
            for key in ("loss", "acc")
        }
        assert tail == batch_points(0, batch)
    assert await integrity_problems(db) == []
    print(
        f"\ncrash: acked={len(stream.acked)} in_flight={len(stream.in_flight)}"
        f" in_flight_kept={len(present - stream.acked)} writer_busy_at_kill={busy}"
        f" versions acked={len(stream.registered)} kept={len(versions)}"
        f" registry_in_flight={stream.registry_in_flight}"
    )
    server.stop()
