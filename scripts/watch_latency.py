"""Measure lifecycle-event delivery latency to many WebSocket watchers; print one JSON object.

    scripts/watch_latency [--quick] [--watchers N] [--events K] [--database-url URL]
                          [--replicas R] [--time-limit SECONDS]
    scripts/watch_latency --burst [--watchers 20000] [--per-connection 100]

Starts `python -m app serve` on free 127.0.0.1 ports against a fresh SQLite file in a
temporary directory (or, with --database-url, the local PostgreSQL `test` database, its
public schema dropped and recreated first; --replicas 2 then starts two servers on it).

  1. setup over HTTP: register version 1 of model "m"; the last cursor of the `events`
     query is where every watcher starts (`after`), so none can miss anything;
  2. N watchers (default 1,000), each its own WebSocket (graphql-transport-ws) with one
     `lifecycleEvents(model: "m", after: <cursor>)` subscription, round-robin over the
     replicas; one warm-up change (updateModel) must reach all of them: then all are live;
  3. K mutations (default 20), one at a time, all sent to the first replica: version n
     DEVELOPMENT -> STAGING -> PRODUCTION, then version n+1 is registered, and so on (a
     promotion to PRODUCTION also archives the version it replaces: two events). Before
     the next mutation every watcher must have received every event of this one.

Latency of one delivery (one watcher, one event) = the watcher's receive time minus the
time its mutation's HTTP request was sent ("from_request_sent"), and minus the time its
HTTP response was received ("from_response_received"; negative when the event arrived
first). The mutations are sent by a helper process (this script with --mutator), so their
timestamps are not delayed by this process's event loop being busy with 1,000 sockets;
both processes read the same system-wide monotonic clock (CLOCK_MONOTONIC). Receive times
are taken in this process's event loop when a watcher's task gets its message, so they
include client-side queueing (see per_event.spread_ms and cpu_s.client).

Server CPU seconds while the mutations ran, per delivery, are in
server_cpu_during_mutations: on a busy machine the least noisy figure. The server's caps
on one token's connections and subscriptions are raised to the watcher count.

--burst: N subscriptions (default 1,000; the aim is 20,000) over N / --per-connection
WebSockets; five mutations of the same plan, each timed until every subscription has its
events (all_delivered_from_sent), while a helper process GETs /healthz every 10 ms: its
latency idle and while the deliveries run.

At the end every watcher's stream is compared with the committed `events` list: the same
cursors, in order, no gap, no duplicate. Progress goes to stderr, the JSON to stdout;
the exit status is 1 if anything was lost, duplicated, reordered or failed. Servers and the
helper are always stopped (also on errors, SIGINT and SIGTERM); the whole run is bounded
by --time-limit (default 170 s). All traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _harness import (
    REGISTER,
    ROOT,
    Deadline,
    Server,
    auth_headers,
    check_postgres_url,
    clean_env,
    cpu_model,
    exit_on_sigterm,
    expect_typename,
    logger,
    package_versions,
    percentile,
    python_exe,
    reset_postgres,
    rounded,
    stats_ms,
)

from app.client import (  # after _harness, which puts the project on sys.path
    Client,
    ClientError,
    StreamClosed,
    StreamEnded,
    Subscription,
)

SCRIPT = Path(__file__).resolve()
MODEL = "m"
QUICK_WATCHERS, QUICK_EVENTS = 100, 5
CONNECT_CONCURRENCY = 100  # WebSocket handshakes in flight at once
EVENT_WAIT_S = 30.0  # the longest wait for one event to reach every watcher
PROBE_EVERY_S = 0.01  # /healthz probes during --burst
BURST_ROUNDS = 5  # promotions measured by --burst
BURST_CONNECT_CONCURRENCY = 10  # connections opening at once (each then subscribes 100 times)

WATCH_FULL = """
subscription Watch($model: String, $after: String) {
  lifecycleEvents(model: $model, after: $after) {
    cursor type model versionNumber fromStage toStage actor
    version { version stage }
  }
}"""

WATCH_LEAN = """
subscription Watch($model: String, $after: String) {
  lifecycleEvents(model: $model, after: $after) {
    cursor type model versionNumber fromStage toStage actor
  }
}"""

EVENTS = """
query Events($model: String, $after: String) {
  events(model: $model, after: $after, first: 500) {
    nodes { cursor type versionNumber fromStage toStage }
    pageInfo { hasNextPage endCursor }
  }
}"""

TRANSITION = """
mutation Transition($input: TransitionModelVersionInput!) {
  transitionModelVersion(input: $input) {
    __typename
    ... on TransitionModelVersionSuccess {
      modelVersion { version stage }
      transitions { fromStage toStage modelVersion { version } }
    }
    ... on Error { code message }
  }
}"""

UPDATE_MODEL = """
mutation Update($input: UpdateModelInput!) {
  updateModel(input: $input) {
    __typename
    ... on Error { code message }
  }
}"""


class WatchError(RuntimeError):
    pass


log = logger("watch_latency")


def summary_ms(seconds: list[float]) -> dict[str, Any]:
    return stats_ms(seconds, ("p50", "p95", "p99", "max", "mean", "min"))


# ---------------------------------------------------------------- open files


def raise_nofile_limit(wanted: int | None = None) -> tuple[int, int]:
    """Raise the soft open-files limit towards the hard one; returns the new (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if wanted is None or hard == resource.RLIM_INFINITY else min(hard, wanted)
    if target == resource.RLIM_INFINITY:
        target = max(soft, 65536)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _child_preexec() -> None:
    """In the server process before exec: as many open files as the hard limit allows."""
    raise_nofile_limit()


def log_problems(text: str) -> dict[str, Any]:
    lines = text.splitlines()
    bad = [
        i
        for i, line in enumerate(lines)
        if "Traceback" in line or line.startswith(("ERROR", "CRITICAL")) or "Error" in line
    ]
    out: dict[str, Any] = {
        "lines": len(lines),
        "tracebacks": sum("Traceback" in line for line in lines),
        "error_lines": len(bad),
    }
    if bad:
        first = bad[0]
        out["first_error_excerpt"] = "\n".join(lines[max(0, first - 2) : first + 30])
        out["tail"] = "\n".join(lines[-30:])
    return out


# ---------------------------------------------------------------- HTTP (setup, checks)


def watcher_caps(watchers: int) -> dict[str, str]:
    """Server settings that admit `watchers` connections and subscriptions on one token
    (the defaults cap a token at 500 connections); never below the defaults."""
    room = watchers + 100
    return {
        "MODELGRAPH_MAX_WEBSOCKET_CONNECTIONS": str(max(2_000, room)),
        "MODELGRAPH_MAX_WEBSOCKET_CONNECTIONS_PER_TOKEN": str(max(500, room)),
        "MODELGRAPH_MAX_SUBSCRIPTIONS": str(max(10_000, room)),
        "MODELGRAPH_MAX_SUBSCRIPTIONS_PER_TOKEN": str(max(1_000, room)),
    }


def client(base_url: str) -> Client:
    """A keep-alive client with the harness's token; no proxy: all stays on 127.0.0.1."""
    return Client(base_url, headers=auth_headers(), trust_env=False)


def gql(base_url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        with client(base_url) as graphql:
            return graphql.execute(query, variables)
    except ClientError as exc:
        raise WatchError(f"HTTP {exc.status}: {exc.errors or exc.message}") from exc


def committed_events(base_url: str, after: str | None) -> list[dict[str, Any]]:
    """Every committed event of model MODEL after `after`, in order (all pages)."""
    out: list[dict[str, Any]] = []
    for _ in range(1000):
        page = gql(base_url, EVENTS, {"model": MODEL, "after": after})["events"]
        out.extend(page["nodes"])
        if not page["pageInfo"]["hasNextPage"]:
            return out
        after = page["pageInfo"]["endCursor"]
    raise WatchError("events: too many pages")


def expect(result: dict[str, Any], typename: str) -> dict[str, Any]:
    return expect_typename(result, typename, WatchError)


# ---------------------------------------------------------------- the mutator process


def mutator_main(base_url: str) -> int:
    """Helper process: one JSON request per stdin line -> one JSON line with timestamps.

    Its own process, so the send and response times are taken right at the socket, not
    when a busy event loop gets round to them; time.monotonic() is CLOCK_MONOTONIC, the
    same clock in every process on this machine."""
    with client(base_url) as graphql:
        graphql.http.get(f"{base_url}/healthz")  # open the keep-alive connection first
        for line in sys.stdin:
            if not line.strip():
                continue
            payload = line.strip().encode()
            try:
                sent = time.monotonic()
                response = graphql.send(payload)
                received = time.monotonic()
                out = {
                    "t_sent": sent,
                    "t_resp": received,
                    "status": response.status_code,
                    "body": response.json() if response.status_code == 200 else response.text,
                }
            except Exception as exc:  # reported to the parent, which decides
                out = {"error": f"{type(exc).__name__}: {exc}"}
            sys.stdout.write(json.dumps(out) + "\n")
            sys.stdout.flush()
    return 0


def prober_main(base_url: str) -> int:
    """Helper process: GET /healthz every PROBE_EVERY_S on one keep-alive connection, one
    JSON line per probe ({"t": sent, "ms": latency}), until killed."""
    with client(base_url) as graphql:
        while True:
            sent = time.monotonic()
            try:
                status = graphql.http.get(f"{base_url}/healthz").status_code
            except Exception as exc:  # reported as a failed probe
                status = f"{type(exc).__name__}"
            ms = (time.monotonic() - sent) * 1000
            sys.stdout.write(json.dumps({"t": sent, "ms": ms, "status": status}) + "\n")
            sys.stdout.flush()
            time.sleep(PROBE_EVERY_S)


class Prober:
    """The /healthz prober process, its lines gathered by a task of this event loop."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.proc: asyncio.subprocess.Process | None = None
        self.task: asyncio.Task[None] | None = None
        self.probes: list[dict[str, Any]] = []

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            python_exe(),
            str(SCRIPT),
            "--prober",
            self.base_url,
            cwd=ROOT,
            env={**clean_env(), "PYTHONDONTWRITEBYTECODE": "1"},
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.probes.append(json.loads(line))

    def between(self, start: float, end: float) -> dict[str, Any]:
        """Probes sent in [start, end], and any still unanswered at `end`."""
        inside = [p for p in self.probes if start <= p["t"] <= end]
        return {
            **summary_ms([p["ms"] / 1000 for p in inside]),
            "failed": sum(1 for p in inside if p["status"] != 200),
        }

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self.task, 5)


class Mutator:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            python_exe(),
            str(SCRIPT),
            "--mutator",
            self.base_url,
            cwd=ROOT,
            env={**clean_env(), "PYTHONDONTWRITEBYTECODE": "1"},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
        )

    async def send(self, query: str, variables: dict[str, Any], wait_s: float) -> dict[str, Any]:
        assert self.proc is not None
        assert self.proc.stdin
        assert self.proc.stdout
        line = json.dumps({"query": query, "variables": variables}) + "\n"
        self.proc.stdin.write(line.encode())
        await self.proc.stdin.drain()
        raw = await asyncio.wait_for(self.proc.stdout.readline(), wait_s)
        if not raw:
            raise WatchError(f"mutator exited ({self.proc.returncode})")
        out = json.loads(raw)
        if "error" in out:
            raise WatchError(f"mutation request failed: {out['error']}")
        if out["status"] != 200:
            raise WatchError(f"mutation HTTP {out['status']}: {str(out['body'])[:500]}")
        if out["body"].get("errors"):
            raise WatchError(f"mutation GraphQL errors: {json.dumps(out['body'])[:500]}")
        return out

    async def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(Exception):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()


# ---------------------------------------------------------------- watchers


def event_key(event: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies an event of this run's plan (each is unique within one run)."""
    kind = event.get("type")
    if kind == "VERSION_REGISTERED":
        return (kind, event.get("versionNumber"))
    if kind == "STAGE_CHANGED":
        return (kind, event.get("versionNumber"), event.get("toStage"))
    if kind == "MODEL_UPDATED":
        return (kind,)
    return (kind, event.get("versionNumber"), event.get("toStage"), event.get("cursor"))


class Tally:
    """Per event key: how many watchers have it; an asyncio.Event once all of them do."""

    def __init__(self, watchers: int) -> None:
        self.watchers = watchers
        self.counts: dict[tuple[Any, ...], int] = defaultdict(int)
        self.complete: dict[tuple[Any, ...], asyncio.Event] = defaultdict(asyncio.Event)

    def add(self, key: tuple[Any, ...]) -> None:
        self.counts[key] += 1
        if self.counts[key] >= self.watchers:
            self.complete[key].set()


@dataclass
class Watcher:
    index: int
    replica: int
    url: str
    ws: Any = None
    task: asyncio.Task[None] | None = None
    connect_s: float | None = None
    # (receive time, cursor, key) for every `next` message, in arrival order
    received: list[tuple[float, str, tuple[Any, ...]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    closing: bool = False
    completed: bool = False


async def connect_watcher(
    w: Watcher, query: str, after: str, compression: str | None, wait_s: float
) -> None:
    started = time.monotonic()
    w.ws = Subscription(
        w.url,
        query,
        {"model": MODEL, "after": after},
        init_payload=auth_headers(),
        timeout=wait_s,
        connect_options={
            "compression": compression,
            "proxy": None,
            "max_queue": None,
            "close_timeout": 3,
        },
    )
    try:
        await w.ws.open()
    except ClientError as exc:
        raise WatchError(f"watcher {w.index}: {exc}") from exc
    w.ws.timeout = None  # the stream then waits as long as the measurement runs
    w.connect_s = time.monotonic() - started


async def read_watcher(w: Watcher, tally: Tally) -> None:
    """Record every event with its receive time, as soon as this task gets it."""
    while True:
        try:
            data = await w.ws.next()
        except StreamEnded:
            w.completed = True
            w.problems.append("the server completed the subscription")
            continue
        except StreamClosed as exc:
            if not w.closing:
                w.problems.append(f"connection closed: {exc}")
            return
        except ClientError as exc:  # a result with errors, or an unexpected message
            w.problems.append(f"{exc.message[:300]}: {json.dumps(exc.errors)[:300]}")
            continue
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # recorded and reported; the other watchers go on
            w.problems.append(f"{type(exc).__name__}: {exc}")
            return
        now = time.monotonic()
        event = data.get("lifecycleEvents") or {}
        key = event_key(event)
        w.received.append((now, event.get("cursor", ""), key))
        tally.add(key)


async def connect_all(
    watchers: list[Watcher],
    query: str,
    after: str,
    compression: str | None,
    tally: Tally,
    deadline: Deadline,
) -> list[str]:
    """Connect every watcher (bounded concurrency); returns the failures."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    budget = deadline.cap(90)
    failures: list[str] = []

    async def one(w: Watcher) -> None:
        async with gate:
            try:
                await connect_watcher(w, query, after, compression, wait_s=min(30.0, budget))
            except Exception as exc:
                failures.append(
                    f"watcher {w.index} (replica {w.replica}): {type(exc).__name__}: {exc}"
                )
                return
            w.task = asyncio.create_task(read_watcher(w, tally))

    try:
        await asyncio.wait_for(asyncio.gather(*(one(w) for w in watchers)), budget)
    except TimeoutError:
        failures.append(f"connecting did not finish in {budget:.0f}s")
    return failures


async def close_all(watchers: list[Watcher]) -> None:
    for w in watchers:
        w.closing = True

    async def one(w: Watcher) -> None:
        if w.ws is not None:
            with contextlib.suppress(Exception):
                await w.ws.close()
        if w.task is not None:
            w.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await w.task

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(one(w) for w in watchers)), 20)


# ---------------------------------------------------------------- the plan


@dataclass
class Mutation:
    index: int
    label: str
    query: str
    variables: dict[str, Any]
    t_sent: float = 0.0
    t_resp: float = 0.0
    keys: list[tuple[Any, ...]] = field(default_factory=list)


def plan(k: int) -> list[Mutation]:
    """Version n: DEVELOPMENT -> STAGING -> PRODUCTION, then register n+1; K mutations."""
    out: list[Mutation] = []
    version = 1  # registered during setup, in DEVELOPMENT
    step = 0
    while len(out) < k:
        i = len(out)
        if step == 0 or step == 1:
            stage = "STAGING" if step == 0 else "PRODUCTION"
            variables = {"input": {"model": MODEL, "version": version, "stage": stage}}
            out.append(Mutation(i, f"v{version} -> {stage}", TRANSITION, variables))
        else:
            version += 1
            variables = {"input": {"model": MODEL, "source": f"s3://watch/{version}"}}
            out.append(Mutation(i, f"register v{version}", REGISTER, variables))
        step = (step + 1) % 3
    return out


def keys_of(mutation: Mutation, body: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The events a mutation committed, from its own response."""
    data = body["data"]
    if mutation.query is REGISTER:
        result = expect(data["registerModelVersion"], "RegisterModelVersionSuccess")
        return [("VERSION_REGISTERED", result["modelVersion"]["version"])]
    result = expect(data["transitionModelVersion"], "TransitionModelVersionSuccess")
    return [
        ("STAGE_CHANGED", t["modelVersion"]["version"], t["toStage"]) for t in result["transitions"]
    ]


# ---------------------------------------------------------------- the run


async def measure(
    servers: list[Server], args: argparse.Namespace, deadline: Deadline, result: dict[str, Any]
) -> None:
    first = servers[0]
    query = WATCH_LEAN if args.lean else WATCH_FULL
    compression = None if args.compression == "none" else "deflate"

    log("setup: register version 1 of model 'm'")
    reg = await asyncio.to_thread(gql, first.base_url, REGISTER, {"input": {"model": MODEL}})
    expect(reg["registerModelVersion"], "RegisterModelVersionSuccess")
    setup_events = await asyncio.to_thread(committed_events, first.base_url, None)
    start_cursor = setup_events[-1]["cursor"]
    result["setup"] = {"events_before_start": len(setup_events), "start_cursor": start_cursor}

    mutator = Mutator(first.base_url)
    await mutator.start()
    tally = Tally(args.watchers)
    watchers = [
        Watcher(i, i % len(servers), servers[i % len(servers)].ws_url) for i in range(args.watchers)
    ]
    mutations = plan(args.events)
    try:
        log(f"connecting {args.watchers} watchers over {len(servers)} server(s)")
        connect_started = time.monotonic()
        failures = await connect_all(watchers, query, start_cursor, compression, tally, deadline)
        connect_all_s = time.monotonic() - connect_started
        connected = [w for w in watchers if w.task is not None]
        result["connect"] = {
            "watchers_connected": len(connected),
            "all_connected_s": rounded(connect_all_s),
            "per_watcher_handshake_ack_subscribe": summary_ms(
                [w.connect_s for w in connected if w.connect_s is not None]
            ),
            "concurrency": CONNECT_CONCURRENCY,
            "failures": failures[:20],
            "failures_total": len(failures),
        }
        if failures:
            raise WatchError(f"{len(failures)} watchers failed to connect: {failures[:3]}")
        log(f"all connected in {connect_all_s:.2f}s; warm-up change")

        # Warm-up: one change every watcher must receive; after it all are surely live.
        warm = await mutator.send(
            UPDATE_MODEL,
            {"input": {"name": MODEL, "description": "watch_latency warm-up"}},
            wait_s=deadline.cap(30),
        )
        expect(warm["body"]["data"]["updateModel"], "UpdateModelSuccess")
        warm_key = ("MODEL_UPDATED",)
        try:
            await asyncio.wait_for(tally.complete[warm_key].wait(), deadline.cap(60))
        except TimeoutError as exc:
            raise WatchError(
                f"warm-up reached {tally.counts[warm_key]} of {args.watchers} watchers in 60s"
            ) from exc
        live_s = time.monotonic() - connect_started
        warm_latency = [
            t - warm["t_sent"] for w in watchers for t, _, key in w.received if key == warm_key
        ]
        result["connect"]["all_live_s"] = rounded(live_s)
        result["connect"]["warm_up_delivery_from_request_sent"] = summary_ms(warm_latency)
        log(f"all {args.watchers} watchers live after {live_s:.2f}s; {len(mutations)} mutations")

        # The measured mutations, one at a time.
        per_event: list[dict[str, Any]] = []
        done: list[Mutation] = []
        truncated = None
        cpu_start = [s.cpu_seconds() for s in servers]
        for m in mutations:
            if deadline.remaining() < 40:
                truncated = f"stopped after {len(done)} mutations: time limit"
                log(truncated)
                break
            out = await mutator.send(m.query, m.variables, wait_s=deadline.cap(60))
            m.t_sent, m.t_resp = out["t_sent"], out["t_resp"]
            m.keys = keys_of(m, out["body"])
            done.append(m)
            for key in m.keys:
                wait = deadline.cap(EVENT_WAIT_S)
                try:
                    await asyncio.wait_for(tally.complete[key].wait(), wait)
                except TimeoutError:
                    log(f"{m.label} {key}: {tally.counts[key]} of {args.watchers} in {wait:.0f}s")
            for key in m.keys:
                times = [t for w in watchers for t, _, k in w.received if k == key]
                per_event.append(
                    {
                        "mutation": m.index,
                        "label": m.label,
                        "event": list(key),
                        "mutation_http_ms": rounded((m.t_resp - m.t_sent) * 1000),
                        "received": len(times),
                        "first_from_sent_ms": rounded((min(times) - m.t_sent) * 1000)
                        if times
                        else None,
                        "p50_from_sent_ms": rounded(
                            percentile([(t - m.t_sent) * 1000 for t in times], 50)
                        ),
                        "last_from_sent_ms": rounded((max(times) - m.t_sent) * 1000)
                        if times
                        else None,
                        "spread_ms": rounded((max(times) - min(times)) * 1000) if times else None,
                    }
                )
            log(
                f"{m.label}: {len(m.keys)} event(s), last delivery "
                f"{per_event[-1]['last_from_sent_ms']} ms after the request"
            )
        cpu_end = [s.cpu_seconds() for s in servers]
        # Anything late or extra still in flight: a short grace period, then compare.
        await asyncio.sleep(0.5)
        result["server_cpu_during_mutations"] = mutation_cpu(
            cpu_start, cpu_end, sum(len(m.keys) for m in done) * len(watchers), len(done)
        )
        result["per_event"] = per_event
        result["truncated"] = truncated
        analyse(result, watchers, done, warm_key, len(servers))
        committed = await asyncio.to_thread(committed_events, first.base_url, start_cursor)
        verify_streams(result, watchers, committed)
    finally:
        result.setdefault("counts", {})["watcher_problems_total"] = sum(
            len(w.problems) for w in watchers
        )
        problems = [f"watcher {w.index}: {p}" for w in watchers for p in w.problems]
        result["watcher_problems"] = problems[:20]
        result["server_open_fds_before_close"] = [s.open_fds() for s in servers]
        log("closing the watchers")
        await close_all(watchers)
        await mutator.stop()


class BurstConnection:
    """One WebSocket carrying `subscriptions` lifecycleEvents subscriptions (graphql-transport-ws)."""

    def __init__(self, index: int, url: str, subscriptions: int) -> None:
        self.index = index
        self.url = url
        self.subscriptions = subscriptions
        self.ws: Any = None
        self.task: asyncio.Task[None] | None = None
        # per subscription id: the cursors received, in order
        self.cursors: dict[str, list[str]] = {str(i): [] for i in range(subscriptions)}
        self.problems: list[str] = []
        self.closing = False

    async def open(self, query: str, after: str, compression: str | None) -> None:
        import websockets  # the client library app.client uses too

        self.ws = await websockets.connect(
            self.url,
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            compression=compression,
            max_queue=None,
            proxy=None,
            close_timeout=3,
            open_timeout=60,  # the server is busy starting the subscriptions sent before
        )
        await self.ws.send(json.dumps({"type": "connection_init", "payload": auth_headers()}))
        ack = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
        if ack.get("type") != "connection_ack":
            raise WatchError(f"connection {self.index}: {ack}")
        variables = {"model": MODEL, "after": after}
        for sid in self.cursors:
            message = {
                "id": sid,
                "type": "subscribe",
                "payload": {"query": query, "variables": variables},
            }
            await self.ws.send(json.dumps(message))

    async def read(self, arrivals: dict[tuple[Any, ...], list[float]], tally: Tally) -> None:
        try:
            async for raw in self.ws:
                now = time.monotonic()
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "ping":
                    await self.ws.send(json.dumps({"type": "pong"}))
                    continue
                if kind != "next" or message.get("payload", {}).get("errors"):
                    self.problems.append(json.dumps(message)[:300])
                    continue
                event = message["payload"]["data"]["lifecycleEvents"]
                key = event_key(event)
                self.cursors[message["id"]].append(event["cursor"])
                arrivals[key].append(now)
                tally.add(key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self.closing:
                self.problems.append(f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        self.closing = True
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


async def measure_burst(
    servers: list[Server], args: argparse.Namespace, deadline: Deadline, result: dict[str, Any]
) -> None:
    """--burst: N subscriptions over N / --per-connection WebSockets; BURST_ROUNDS plan
    mutations, each waited for until every subscription has its events; /healthz probed
    every PROBE_EVERY_S by a helper process throughout, and compared before and during."""
    server = servers[0]
    query = WATCH_LEAN if args.lean else WATCH_FULL
    compression = None if args.compression == "none" else "deflate"
    reg = await asyncio.to_thread(gql, server.base_url, REGISTER, {"input": {"model": MODEL}})
    expect(reg["registerModelVersion"], "RegisterModelVersionSuccess")
    setup_events = await asyncio.to_thread(committed_events, server.base_url, None)
    start_cursor = setup_events[-1]["cursor"]

    per = args.per_connection
    sizes = [min(per, args.watchers - i) for i in range(0, args.watchers, per)]
    connections = [BurstConnection(i, server.ws_url, n) for i, n in enumerate(sizes)]
    tally = Tally(args.watchers)
    arrivals: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    mutator, prober = Mutator(server.base_url), Prober(server.base_url)
    await mutator.start()
    try:
        log(f"burst: {args.watchers} subscriptions over {len(connections)} connections")
        gate = asyncio.Semaphore(BURST_CONNECT_CONCURRENCY)

        async def one(c: BurstConnection) -> None:
            async with gate:
                await c.open(query, start_cursor, compression)
            c.task = asyncio.create_task(c.read(arrivals, tally))

        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(one(c) for c in connections)), deadline.cap(180))
        warm = await mutator.send(
            UPDATE_MODEL, {"input": {"name": MODEL, "description": "burst warm-up"}}, 30
        )
        expect(warm["body"]["data"]["updateModel"], "UpdateModelSuccess")
        await asyncio.wait_for(tally.complete[("MODEL_UPDATED",)].wait(), deadline.cap(120))
        result["connect"] = {
            "connections": len(connections),
            "subscriptions": args.watchers,
            "all_live_s": rounded(time.monotonic() - started),
        }
        await prober.start()
        await asyncio.sleep(2)  # probes of an idle server, to compare with
        quiet_end = time.monotonic()
        rounds: list[dict[str, Any]] = []
        done: list[Mutation] = []
        cpu_start = server.cpu_seconds()
        for m in plan(BURST_ROUNDS):
            if deadline.remaining() < 40:
                break
            out = await mutator.send(m.query, m.variables, wait_s=deadline.cap(60))
            m.t_sent, m.t_resp = out["t_sent"], out["t_resp"]
            m.keys = keys_of(m, out["body"])
            done.append(m)
            for key in m.keys:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(tally.complete[key].wait(), deadline.cap(EVENT_WAIT_S))
            last = max((max(arrivals[k]) for k in m.keys if arrivals[k]), default=m.t_sent)
            rounds.append(
                {
                    "label": m.label,
                    "events": len(m.keys),
                    "delivered": sum(len(arrivals[k]) for k in m.keys),
                    "mutation_http_ms": rounded((m.t_resp - m.t_sent) * 1000),
                    "all_delivered_from_sent_ms": rounded((last - m.t_sent) * 1000),
                    "all_delivered_from_response_ms": rounded((last - m.t_resp) * 1000),
                    "healthz_while_delivering": prober.between(m.t_sent, last),
                }
            )
            log(
                f"burst {m.label}: all {args.watchers} in {rounds[-1]['all_delivered_from_sent_ms']} ms"
            )
            await asyncio.sleep(0.5)  # quiet between rounds: probes see each burst apart
        cpu_end = server.cpu_seconds()
        deliveries = sum(r["delivered"] for r in rounds)
        result["rounds"] = rounds
        result["burst"] = {
            "all_delivered_from_sent": summary_ms(
                [r["all_delivered_from_sent_ms"] / 1000 for r in rounds]
            ),
            "healthz_idle": prober.between(quiet_end - 2, quiet_end),
            "healthz_during_deliveries": {
                "max_ms": max(
                    (r["healthz_while_delivering"]["max_ms"] or 0 for r in rounds), default=None
                ),
            },
        }
        result["server_cpu_during_mutations"] = mutation_cpu(
            [cpu_start], [cpu_end], deliveries, len(done)
        )
        expected = await asyncio.to_thread(committed_events, server.base_url, start_cursor)
        want = [e["cursor"] for e in expected]
        exact = sum(1 for c in connections for got in c.cursors.values() if got == want)
        result["streams"] = {
            "committed_since_start": len(want),
            "watchers_with_exact_stream": exact,
            "all_exact": exact == args.watchers,
            "mismatches": [],
        }
        result["counts"] = {
            "watchers": args.watchers,
            "deliveries_expected": sum(len(m.keys) for m in done) * args.watchers,
            "deliveries_received": deliveries,
            "deliveries_equal": deliveries == sum(len(m.keys) for m in done) * args.watchers,
            "watcher_problems_total": sum(len(c.problems) for c in connections),
        }
        result["watcher_problems"] = [p for c in connections for p in c.problems][:20]
    finally:
        await prober.stop()
        log("closing the connections")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(c.close() for c in connections)), 30)
        await mutator.stop()


def mutation_cpu(
    start: list[float | None], end: list[float | None], deliveries: int, mutations: int
) -> dict[str, Any]:
    """Server CPU seconds spent while the measured mutations ran (all replicas), and per
    delivery: the figure a busy machine leaves least noisy."""
    spent = sum(b - a for a, b in zip(start, end, strict=True) if a is not None and b is not None)
    return {
        "cpu_s": rounded(spent),
        "deliveries": deliveries,
        "ms_per_delivery": rounded(spent * 1000 / deliveries) if deliveries else None,
        "ms_per_mutation": rounded(spent * 1000 / mutations) if mutations else None,
    }


def analyse(
    result: dict[str, Any],
    watchers: list[Watcher],
    mutations: list[Mutation],
    warm_key: tuple[Any, ...],
    replicas: int,
) -> None:
    by_key = {key: m for m in mutations for key in m.keys}
    sent: dict[str, list[float]] = defaultdict(list)
    resp: dict[str, list[float]] = defaultdict(list)
    duplicates = unexpected = 0
    for w in watchers:
        group = "same_replica" if w.replica == 0 else "other_replica"
        seen: set[tuple[Any, ...]] = set()
        for t, _, key in w.received:
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            m = by_key.get(key)
            if m is None:
                if key != warm_key:
                    unexpected += 1
                continue
            for name in ("all", group):
                sent[name].append(t - m.t_sent)
                resp[name].append(t - m.t_resp)
    events = sum(len(m.keys) for m in mutations)
    expected = events * len(watchers)
    received = len(sent["all"])
    result["counts"] = {
        "watchers": len(watchers),
        "replicas": replicas,
        "mutations": len(mutations),
        "events": events,
        "warm_up_events": 1,
        "deliveries_expected": expected,
        "deliveries_received": received,
        "deliveries_equal": expected == received,
        "missing": expected - received,
        "duplicates": duplicates,
        "unexpected_events": unexpected,
    }
    result["latency"] = {
        "from_request_sent": summary_ms(sent["all"]),
        "from_response_received": summary_ms(resp["all"]),
        "received_before_response": sum(1 for x in resp["all"] if x < 0),
    }
    result["mutation_http"] = summary_ms([m.t_resp - m.t_sent for m in mutations])
    if replicas > 1:
        result["latency_by_replica"] = {
            group: {
                "watchers": sum(
                    1 for w in watchers if (w.replica == 0) == (group == "same_replica")
                ),
                "from_request_sent": summary_ms(sent[group]),
                "from_response_received": summary_ms(resp[group]),
                "received_before_response": sum(1 for x in resp[group] if x < 0),
            }
            for group in ("same_replica", "other_replica")
        }


def verify_streams(
    result: dict[str, Any], watchers: list[Watcher], committed: list[dict[str, Any]]
) -> None:
    """Every watcher's cursors must be exactly the committed ones since the start cursor."""
    want = [e["cursor"] for e in committed]
    exact = 0
    mismatches: list[str] = []
    for w in watchers:
        got = [cursor for _, cursor, _ in w.received]
        if got == want:
            exact += 1
        elif len(mismatches) < 5:
            mismatches.append(
                f"watcher {w.index} (replica {w.replica}): {len(got)} events, want {len(want)}; "
                f"first difference at {next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want)))}"
            )
    result["streams"] = {
        "committed_since_start": len(want),
        "watchers_with_exact_stream": exact,
        "all_exact": exact == len(watchers),
        "mismatches": mismatches,
    }


# ---------------------------------------------------------------- machine


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "versions": package_versions(
            ("strawberry-graphql", "uvicorn", "websockets", "SQLAlchemy", "httpx")
        ),
    }


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, help="WebSocket watchers (default 1000)")
    parser.add_argument("--events", type=int, help="mutations to make (default 20)")
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_WATCHERS} watchers, {QUICK_EVENTS} mutations"
    )
    parser.add_argument(
        "--database-url",
        help="postgresql+asyncpg://postgres@127.0.0.1:5432/test (its public schema is reset); "
        "default: a fresh SQLite file in a temporary directory",
    )
    parser.add_argument(
        "--replicas", type=int, default=1, help="servers on the database (PostgreSQL only)"
    )
    parser.add_argument(
        "--lean",
        action="store_true",
        help="subscribe without the `version { version stage }` field (no per-event lookup)",
    )
    parser.add_argument(
        "--compression",
        choices=("deflate", "none"),
        default="deflate",
        help="WebSocket permessage-deflate offer (the websockets client default: deflate)",
    )
    parser.add_argument(
        "--burst",
        action="store_true",
        help=f"many subscriptions, few connections: {BURST_ROUNDS} mutations, each timed until "
        "every subscription has it, with /healthz probed throughout (e.g. --burst --watchers 20000)",
    )
    parser.add_argument(
        "--per-connection",
        type=int,
        default=100,
        help="--burst: subscriptions per WebSocket (default 100, the server's default cap)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--time-limit", type=float, default=170.0, help="seconds for the whole run (default 170)"
    )
    args = parser.parse_args(argv)
    if args.watchers is None:
        args.watchers = QUICK_WATCHERS if args.quick else 1000
    if args.events is None:
        args.events = QUICK_EVENTS if args.quick else 20
    if args.watchers < 1 or args.events < 1:
        parser.error("--watchers and --events must be at least 1")
    if args.replicas < 1 or (args.replicas > 1 and not args.database_url):
        parser.error("--replicas > 1 needs --database-url (PostgreSQL)")
    if args.database_url:
        check_postgres_url(args.database_url)
    return args


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--mutator"]:
        return mutator_main(argv[1])
    if argv[:1] == ["--prober"]:
        return prober_main(argv[1])
    args = parse_args(argv)
    deadline = Deadline(args.time_limit, WatchError)
    started = time.monotonic()
    # two descriptors per watcher would be plenty; leave room for the rest
    nofile = raise_nofile_limit(args.watchers * 2 + 1024)
    tmp = Path(tempfile.mkdtemp(prefix="modelgraph-watch-"))
    database_url = args.database_url or f"sqlite+aiosqlite:///{tmp / 'watch.db'}"
    mode = "quick" if args.quick else "default"
    if (args.watchers, args.events) not in ((1000, 20), (QUICK_WATCHERS, QUICK_EVENTS)):
        mode = "custom"
    if args.burst:
        mode = "burst"
    result: dict[str, Any] = {
        "benchmark": "modelgraph scripts/watch_latency.py",
        "mode": mode,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "config": {
            "watchers": args.watchers,
            "mutations": args.events,
            "database": "postgresql" if args.database_url else "sqlite",
            "database_url": database_url.split("@")[-1] if args.database_url else database_url,
            "replicas": args.replicas,
            "mutations_sent_to": "replica 0",
            "watchers_assigned": "round-robin over replicas",
            "subscription": " ".join((WATCH_LEAN if args.lean else WATCH_FULL).split()),
            "protocol": "graphql-transport-ws",
            "compression": args.compression,
            "client_nofile_limit": list(nofile),
            "time_limit_s": args.time_limit,
        },
    }
    errors: list[str] = []
    servers = [
        Server(database_url, tmp / f"server{i}.log", error=WatchError, preexec_fn=_child_preexec)
        for i in range(args.replicas)
    ]
    for server in servers:  # every watcher uses the harness's one token: room for all of them
        server.env.update(watcher_caps(args.watchers))
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    interrupted: int | None = None
    with exit_on_sigterm():
        try:
            if args.database_url:
                log("resetting the PostgreSQL test schema")
                asyncio.run(asyncio.wait_for(reset_postgres(database_url), 30))
            for i, server in enumerate(servers):  # one by one: the first one migrates
                log(f"starting server {i} on {server.base_url}")
                server.start(timeout=min(60.0, deadline.cap(60)))
            asyncio.run((measure_burst if args.burst else measure)(servers, args, deadline, result))
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
            cpu_after = resource.getrusage(resource.RUSAGE_SELF)
            result["cpu_s"] = {
                "client": rounded(
                    cpu_after.ru_utime
                    + cpu_after.ru_stime
                    - cpu_before.ru_utime
                    - cpu_before.ru_stime
                ),
                "servers": [rounded(s.cpu_seconds()) for s in servers],
            }
            result["servers"] = []
            for i, server in enumerate(servers):
                alive = server.alive()
                server.stop()
                code = server.returncode
                problems = log_problems(server.log_text())
                result["servers"].append(
                    {
                        "replica": i,
                        "url": server.base_url,
                        "startup_s": rounded(server.startup_s),
                        "alive_at_end": alive,
                        "exit_code": code,
                        "log": problems,
                    }
                )
                if server.proc is not None and not alive:
                    errors.append(f"server {i} was not running at the end (exit {code})")
                if problems["tracebacks"]:
                    errors.append(f"server {i} logged {problems['tracebacks']} traceback(s)")
            if not args.keep:
                shutil.rmtree(tmp, ignore_errors=True)
    counts = result.get("counts", {})
    streams = result.get("streams", {})
    if "deliveries_equal" in counts and not counts["deliveries_equal"]:
        errors.append(
            f"deliveries: expected {counts['deliveries_expected']}, "
            f"received {counts['deliveries_received']}"
        )
    if counts.get("duplicates"):
        errors.append(f"{counts['duplicates']} duplicate deliveries")
    if streams and not streams.get("all_exact"):
        errors.append("some watcher streams differ from the committed events")
    if counts.get("watcher_problems_total"):
        errors.append(f"{counts['watcher_problems_total']} watcher problems (see watcher_problems)")
    result["errors"] = errors
    result["ok"] = not errors
    result["duration_s"] = rounded(time.monotonic() - started, 1)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    if interrupted is not None:
        return interrupted
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
