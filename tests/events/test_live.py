"""The live metric feed: what a commit logged reaches the run's subscribers, bounded."""

from asyncio import wait_for

import pytest

from app.db import Database
from app.events import live
from app.events.bus import create_bus
from app.events.live import END, OVERFLOW, MetricFeed
from app.tracking.metrics import LOGGED_METRICS, MetricPoint, log_metrics
from app.tracking.models import RunStatus
from app.tracking.service import ENDED_RUNS, end_run, start_run


def test_batches_reach_only_their_runs_subscribers_and_end_with_the_run():
    feed = MetricFeed()
    mine, other = feed.subscribe("r1"), feed.subscribe("r2")
    feed.publish({LOGGED_METRICS: [("r1", [{"key": "loss"}])], ENDED_RUNS: ["r1"]})
    assert mine.get_nowait() == [{"key": "loss"}]
    assert mine.get_nowait() is END
    assert other.empty()


async def test_a_subscriber_that_falls_behind_is_told_instead_of_buffered():
    # given a subscriber allowed 3 pending points
    feed = MetricFeed(max_points=3)
    queue = feed.subscribe("r1")

    # when 5 one-point batches arrive before it reads
    for i in range(5):
        feed.publish({LOGGED_METRICS: [("r1", [{"step": i}])]})

    # then what was pending is dropped, it is told once, and what came after is kept
    assert await queue.take() is OVERFLOW
    assert await queue.take() == [{"step": 4}]
    assert queue.empty()
    assert queue.points == 0


def test_unsubscribed_queues_get_nothing():
    feed = MetricFeed()
    queue = feed.subscribe("r1")
    feed.unsubscribe("r1", queue)
    feed.publish({LOGGED_METRICS: [("r1", [{"key": "loss"}])]})
    assert queue.empty()


@pytest.mark.postgres
async def test_between_workers_each_point_streams_once_and_an_idle_run_is_not_read_from_afar(
    settings, monkeypatch
):
    # given two "workers" (a database, bus and feed each) sharing points on PostgreSQL
    monkeypatch.setattr(live, "_between_workers", True)
    workers = []
    for _ in range(2):
        db = Database(settings.database_url)
        bus, feed = create_bus(db), MetricFeed()
        db.after_commit.append(feed.publish)
        feed.share(bus, db)
        await bus.start(db)
        workers.append((db, bus, feed))
    (db_a, _, _), (_, _, feed_b) = workers
    try:
        async with db_a.unit_of_work() as session:
            busy = (await start_run(session, experiment="w", actor="t")).id
            idle = (await start_run(session, experiment="w", actor="t")).id
        # and a subscriber on B for each run
        busy_queue, idle_queue = feed_b.subscribe(busy), feed_b.subscribe(idle)

        async def log(run_id: str, step: int) -> None:
            async with db_a.unit_of_work() as session:
                point = MetricPoint(key="loss", value=0.5, step=step)
                await log_metrics(session, run_id=run_id, points=[point], actor="t")

        # when A logs to the busy run three times, then once to the idle one, then ends both
        for step in range(3):
            await log(busy, step)
            assert [p["step"] for p in await wait_for(busy_queue.take(), 10)] == [step]
        shared = feed_b._shared
        assert shared is not None
        # then the idle run's cursor moved with the busy run's points
        assert shared._cursors[idle] == shared._cursors[busy]
        await log(idle, 7)
        assert [p["step"] for p in await wait_for(idle_queue.take(), 10)] == [7]
        async with db_a.unit_of_work() as session:
            await end_run(session, run_id=busy, status=RunStatus.FINISHED, actor="t")

        # and each point came once, the end after them
        assert await wait_for(busy_queue.take(), 10) is END
        assert busy_queue.empty()
        assert idle_queue.empty()
    finally:
        for db, bus, feed in workers:
            feed.close()
            await bus.close()
            await db.dispose()
