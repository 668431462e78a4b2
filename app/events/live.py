"""Live metric points for runMetrics: fanned out in this process after commit.

Per-metric NOTIFY would take PostgreSQL's global commit lock for every batch (docs/ARCHITECTURE.md),
so live curves stream from the process that ingested them; history is in the database.
"""

import asyncio
from collections import defaultdict
from typing import Any

from app.tracking.metrics import LOGGED_METRICS
from app.tracking.service import ENDED_RUNS

END = object()
OVERFLOW = object()


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

    def subscribe(self, run_id: str) -> PointQueue:
        queue = PointQueue(self._max_points)
        self._subscribers[run_id].add(queue)
        return queue

    def unsubscribe(self, run_id: str, queue: PointQueue) -> None:
        subscribers = self._subscribers.get(run_id)
        if subscribers is not None:
            subscribers.discard(queue)
            if not subscribers:
                del self._subscribers[run_id]

    def publish(self, session_info: dict[str, Any]) -> None:
        """After a commit: hand its metric batches and run ends to the run's subscribers."""
        for run_id, rows in session_info.get(LOGGED_METRICS, ()):
            for queue in self._subscribers.get(run_id, ()):
                queue.offer(rows)
        for run_id in session_info.get(ENDED_RUNS, ()):
            for queue in self._subscribers.get(run_id, ()):
                queue.offer(END)

    def close(self) -> None:
        for subscribers in self._subscribers.values():
            for queue in subscribers:
                queue.offer(END)
