"""A task cancelled inside a unit of work or a read session, at any point: the work ends
in a commit or a rollback, the connection goes back to the pool, and nothing is left
holding SQLite's write lock or a PostgreSQL transaction open."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select, text

from app.db import Database
from app.tracking import metrics as tracking_metrics
from app.tracking.models import Metric
from tests.factories import make_run

POINTS = 2000
# Cancel after this many turns of the event loop, one attempt per count: from before the
# first statement to past the commit.
TURNS = range(0, 400, 7)
IDLE_IN_TRANSACTION = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND state LIKE 'idle in transaction%'
"""


@pytest.fixture
async def short_db(database_url: str) -> AsyncIterator[Database]:
    # A lock left behind shows as a failure after 1 s rather than 30; a small pool shows
    # a leaked connection as exhaustion.
    database = Database(database_url, busy_timeout_ms=1000, pool_size=2)
    yield database
    await database.dispose()


def _batch(key: str) -> list[tracking_metrics.MetricPoint]:
    return [tracking_metrics.MetricPoint(key, i / POINTS, i, None) for i in range(POINTS)]


async def _cancel_after(turns: int, coro: object) -> bool:
    """Run `coro` as a task and cancel it after `turns` turns of the loop; whether it
    was cancelled (False: it had finished)."""
    task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
    for _ in range(turns):
        if task.done():
            break
        await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return True
    return False


async def _idle_in_transaction(db: Database) -> int:
    if db.dialect != "postgresql":
        return 0
    async with db.read() as session:
        for _ in range(50):
            count = (await session.execute(text(IDLE_IN_TRANSACTION))).scalar_one()
            if count == 0:
                return 0
            await asyncio.sleep(0.05)
    return count


async def test_a_unit_of_work_cancelled_anywhere_commits_or_rolls_back_and_lets_go(short_db):
    # given a run
    run = await make_run(short_db)
    cancelled = 0

    for turns in TURNS:
        # when a batch is cancelled after `turns` turns of the loop
        async def write(key: str = f"k{turns}") -> None:
            async with short_db.unit_of_work() as session:
                await tracking_metrics.log_metrics(
                    session, run_id=run.id, points=_batch(key), actor="test"
                )

        cancelled += await _cancel_after(turns, write())

        # then the batch is all there or not at all, the next write commits, and no
        # connection is left checked out or inside a transaction
        async with short_db.unit_of_work() as session:
            await tracking_metrics.log_metrics(
                session,
                run_id=run.id,
                points=[tracking_metrics.MetricPoint("after", 1.0, turns, None)],
                actor="test",
            )
        async with short_db.read() as session:
            stored = (
                await session.execute(
                    select(func.count()).where(Metric.run_id == run.id, Metric.key == f"k{turns}")
                )
            ).scalar_one()
        assert stored in (0, POINTS), (turns, stored)
        assert short_db.write_engine.pool.checkedout() == 0, turns
        assert await _idle_in_transaction(short_db) == 0, turns
    assert cancelled > 0


async def test_a_read_cancelled_anywhere_lets_go_of_its_connection(short_db):
    for turns in range(0, 60, 3):

        async def read() -> None:
            async with short_db.read() as session:
                await session.execute(select(func.count()).select_from(Metric))
                await session.execute(text("SELECT 1"))

        await _cancel_after(turns, read())
        assert short_db.read_engine.pool.checkedout() == 0, turns
        assert await _idle_in_transaction(short_db) == 0, turns
