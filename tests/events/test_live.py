"""The live metric feed: what a commit logged reaches the run's subscribers, bounded."""

from app.events.live import END, OVERFLOW, MetricFeed
from app.tracking.metrics import LOGGED_METRICS
from app.tracking.service import ENDED_RUNS


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
