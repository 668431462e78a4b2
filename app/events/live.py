"""Live metric points for runMetrics: fanned out in this process after commit.

Per-metric NOTIFY would take PostgreSQL's global commit lock for every batch (NOTES.md),
so live curves stream from the process that ingested them; history is in the database.
"""

import asyncio
from collections import defaultdict
from typing import Any

from app.tracking.service import ENDED_RUNS, LOGGED_METRICS

END = object()
OVERFLOW = object()


class MetricFeed:
    def __init__(self, *, queue_batches: int = 256) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[Any]]] = defaultdict(set)
        self._queue_batches = queue_batches

    def subscribe(self, run_id: str) -> asyncio.Queue[Any]:
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=self._queue_batches)
        self._subscribers[run_id].add(queue)
        return queue

    def unsubscribe(self, run_id: str, queue: asyncio.Queue[Any]) -> None:
        subscribers = self._subscribers.get(run_id)
        if subscribers is not None:
            subscribers.discard(queue)
            if not subscribers:
                del self._subscribers[run_id]

    @staticmethod
    def _offer(queue: asyncio.Queue[Any], item: Any) -> None:
        # A subscriber that lets its queue fill is told so once, not buffered without bound.
        if queue.full():
            queue.get_nowait()
            item = OVERFLOW
        queue.put_nowait(item)

    def publish(self, session_info: dict[str, Any]) -> None:
        """After a commit: hand its metric batches and run ends to the run's subscribers."""
        for run_id, rows in session_info.get(LOGGED_METRICS, ()):
            for queue in self._subscribers.get(run_id, ()):
                self._offer(queue, rows)
        for run_id in session_info.get(ENDED_RUNS, ()):
            for queue in self._subscribers.get(run_id, ()):
                self._offer(queue, END)

    def close(self) -> None:
        for subscribers in self._subscribers.values():
            for queue in subscribers:
                self._offer(queue, END)
