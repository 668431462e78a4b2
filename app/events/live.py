"""Live metric points for runMetrics, after commit.

In one process the points a commit logged are handed to that process's subscribers.

The worker processes of one `modelgraph serve --workers N` on PostgreSQL share them: a
NOTIFY per metric point would take PostgreSQL's global notify lock at every commit and
carry at most 8,000 bytes (docs/ARCHITECTURE.md), so after each commit that logged points
or ended runs, the worker sends one NOTIFY naming the runs (coalesced while one is in
flight, in a transaction of its own on the bus's connection). Every worker, the sender
included, then reads the new points from the table, only for runs it has subscribers for,
by a cursor per run (the highest metric id it has read past), in one scan of the ids
committed since its oldest cursor. So each point comes from one place, the table, exactly
once, and in id order; a lost notification only delays points until the run's next one. A
run's end follows its points through the same path. The cost of a subscriber is that
scan: its worker reads every point committed while it watches (by primary key, filtered
to the runs it follows), once per notification that names one of them.

One limit, on the shared path only: ids are taken at INSERT and seen at COMMIT, and one
scan moves every followed run's cursor up to the highest id it read. So if two
transactions log points at the same moment, into the same run or into two runs this
worker follows, and the later ids commit first, the earlier ones fall behind the cursors
and do not stream (they are in the history, which a client re-reads on reconnect). Two
trainers logging at once to runs watched from one worker can meet it. The fix is to move
cursors only past ids no transaction still in flight can hold (PostgreSQL's snapshot xmin
at the scan), not yet done.
"""

import asyncio
import json
import logging
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select

from app.db import Database
from app.db.dialect import core_table
from app.events.bus import EventBus, PostgresEventBus
from app.tracking.metrics import LOGGED_METRICS
from app.tracking.models import Metric
from app.tracking.service import ENDED_RUNS

log = logging.getLogger("modelgraph.events")

END = object()
OVERFLOW = object()
METRICS_CHANNEL = "modelgraph_metrics"
# Run ids per notification: 32 characters each, well inside the 8,000-byte payload.
RUNS_PER_NOTIFY = 150
# Points read from the table per statement.
READ_BATCH = 10_000

_between_workers = False


def share_between_workers() -> None:
    """This process is one of a server's workers (app/cli/serve.py): on PostgreSQL its
    feed streams points committed by any of them."""
    global _between_workers
    _between_workers = True


class PointQueue(asyncio.Queue[Any]):
    """A subscriber's pending batches, bounded by the points they hold."""

    def __init__(self, max_points: int) -> None:
        super().__init__()
        self.max_points = max_points
        self.points = 0

    def offer(self, item: Any) -> None:
        size = len(item) if isinstance(item, list) else 0
        if self.points + size > self.max_points:
            # Told once, not buffered without bound: drop what is pending, then OVERFLOW.
            while not self.empty():
                self.get_nowait()
            self.points, item, size = 0, OVERFLOW, 0
        self.points += size
        self.put_nowait(item)

    async def take(self) -> Any:
        item = await self.get()
        if isinstance(item, list):
            self.points -= len(item)
        return item


class MetricFeed:
    def __init__(self, *, max_points: int = 50_000) -> None:
        self._subscribers: dict[str, set[PointQueue]] = defaultdict(set)
        self._max_points = max_points
        self._shared: SharedPoints | None = None

    def share(self, bus: EventBus, db: Database) -> None:
        """Stream points committed by the other workers too, when this process is one of
        a PostgreSQL server's workers (register before the bus starts)."""
        if _between_workers and isinstance(bus, PostgresEventBus):
            self._shared = SharedPoints(self, bus, db)

    def subscribe(self, run_id: str) -> PointQueue:
        queue = PointQueue(self._max_points)
        if self._shared is not None and run_id not in self._subscribers:
            self._shared.follow(run_id)
        self._subscribers[run_id].add(queue)
        return queue

    def unsubscribe(self, run_id: str, queue: PointQueue) -> None:
        subscribers = self._subscribers.get(run_id)
        if subscribers is not None:
            subscribers.discard(queue)
            if not subscribers:
                del self._subscribers[run_id]
                if self._shared is not None:
                    self._shared.unfollow(run_id)

    def publish(self, session_info: dict[str, Any]) -> None:
        """After a commit: hand its metric batches and run ends to the run's subscribers
        (between workers: announce them; every worker reads them from the table)."""
        if self._shared is not None:
            self._shared.announce(
                {run_id for run_id, _rows in session_info.get(LOGGED_METRICS, ())},
                set(session_info.get(ENDED_RUNS, ())),
            )
            return
        for run_id, rows in session_info.get(LOGGED_METRICS, ()):
            self.deliver(run_id, rows)
        for run_id in session_info.get(ENDED_RUNS, ()):
            self.end(run_id)

    def deliver(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        for queue in self._subscribers.get(run_id, ()):
            queue.offer(rows)

    def end(self, run_id: str) -> None:
        for queue in self._subscribers.get(run_id, ()):
            queue.offer(END)

    def close(self) -> None:
        if self._shared is not None:
            self._shared.close()
        for subscribers in self._subscribers.values():
            for queue in subscribers:
                queue.offer(END)


class SharedPoints:
    """The between-workers path of a MetricFeed (see the module's docstring)."""

    def __init__(self, feed: MetricFeed, bus: PostgresEventBus, db: Database) -> None:
        self._feed = feed
        self._bus = bus
        self._db = db
        # Sending: runs with new points, and ended runs, not yet announced.
        self._to_send: set[str] = set()
        self._ends_to_send: set[str] = set()
        self._send_wake = asyncio.Event()
        # Receiving: per followed run, the highest metric id delivered (None: not read yet).
        self._cursors: dict[str, int | None] = {}
        self._to_read: set[str] = set()
        self._ends: set[str] = set()
        self._read_wake = asyncio.Event()
        bus.listen(METRICS_CHANNEL, self._heard)
        self._tasks = [
            asyncio.create_task(self._send_loop()),
            asyncio.create_task(self._read_loop()),
        ]

    def follow(self, run_id: str) -> None:
        self._cursors[run_id] = None
        self._read_wake.set()

    def unfollow(self, run_id: str) -> None:
        self._cursors.pop(run_id, None)

    def announce(self, runs: set[str], ended: set[str]) -> None:
        if runs or ended:
            self._to_send |= runs
            self._ends_to_send |= ended
            self._send_wake.set()

    async def _send_loop(self) -> None:
        while True:
            await self._send_wake.wait()
            self._send_wake.clear()
            runs, self._to_send = sorted(self._to_send), set()
            ended, self._ends_to_send = sorted(self._ends_to_send), set()
            # Ends go with the last chunk, after the points before them are announced.
            chunks = [runs[i : i + RUNS_PER_NOTIFY] for i in range(0, len(runs), RUNS_PER_NOTIFY)]
            ends = [ended[i : i + RUNS_PER_NOTIFY] for i in range(0, len(ended), RUNS_PER_NOTIFY)]
            messages = [{"runs": c} for c in chunks] + [{"ended": e} for e in ends]
            for message in messages:
                try:
                    await self._bus.notify(METRICS_CHANNEL, json.dumps(message))
                except Exception:  # the subscribers' next notification (or run check) catches up
                    log.warning("live metrics: notifying the other workers failed", exc_info=True)

    def _heard(self, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        runs = [r for r in message.get("runs", ()) if r in self._cursors]
        ended = [r for r in message.get("ended", ()) if r in self._cursors]
        if runs or ended:
            self._to_read.update(runs)
            self._ends.update(ended)
            self._read_wake.set()

    async def _read_loop(self) -> None:
        while True:
            await self._read_wake.wait()
            self._read_wake.clear()
            try:
                await self._start_cursors()
                self._to_read.clear()
                ended, self._ends = self._ends, set()
                await self._read()
            except Exception:  # a failed read is retried at the run's next notification
                log.warning("live metrics: reading new points failed", exc_info=True)
                await asyncio.sleep(1)
                continue
            for run_id in ended:
                self._feed.end(run_id)

    async def _start_cursors(self) -> None:
        """A newly followed run streams what commits from now on."""
        new = [r for r, cursor in self._cursors.items() if cursor is None]
        if not new:
            return
        table = core_table(Metric)
        async with self._db.read(background=True) as session:
            newest = (await session.execute(select(func.max(table.c.id)))).scalar() or 0
        for run_id in new:
            if run_id in self._cursors and self._cursors[run_id] is None:
                self._cursors[run_id] = newest

    async def _read(self) -> None:
        """New points of every followed run, up to the newest id now. One scan covers the
        ids committed since the oldest cursor, and every cursor then moves up to where it
        stopped, so a run that logged nothing for a while is never read from far back
        (the scan walks the primary key; the history index would read a run's whole
        history to find the new points)."""
        followed = sorted(r for r, cursor in self._cursors.items() if cursor is not None)
        if not followed:
            return
        t = core_table(Metric).c
        columns = (t.id, t.run_id, t.key, t.value, t.is_nan, t.step, t.timestamp)
        after = min(c for r in followed if (c := self._cursors.get(r)) is not None)
        async with self._db.read(background=True) as session:
            upto = (await session.execute(select(func.max(t.id)))).scalar() or 0
        while after < upto:
            stmt = (
                select(*columns)
                .where(t.id > after, t.id <= upto, t.run_id.in_(followed))
                .order_by(t.id)
                .limit(READ_BATCH)
            )
            async with self._db.read(background=True) as session:
                rows = (await session.execute(stmt)).all()
            batches: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for row in rows:
                cursor = self._cursors.get(row.run_id)
                if cursor is not None and row.id > cursor:
                    batches[row.run_id].append(
                        {
                            "run_id": row.run_id,
                            "key": row.key,
                            "value": row.value,
                            "is_nan": row.is_nan,
                            "step": row.step,
                            "timestamp": row.timestamp,
                        }
                    )
            after = rows[-1].id if len(rows) == READ_BATCH else upto
            for run_id in followed:
                cursor = self._cursors.get(run_id)
                if cursor is not None and cursor < after:
                    self._cursors[run_id] = after
            for run_id, batch in batches.items():
                self._feed.deliver(run_id, batch)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
