"""skip_repeats: points a run's history already holds are not appended again (MLflow's
client re-sends a run's metrics at a logged model's step, naming the model)."""

import math

from sqlalchemy import func, select

from app.events.models import Event
from app.tracking import metrics as tracking_metrics
from app.tracking.metrics import MetricPoint
from app.tracking.models import Metric
from tests.factories import make_run


async def history(db, run_id: str) -> list[tuple]:
    async with db.read() as session:
        rows = await session.execute(
            select(Metric.key, Metric.step, Metric.timestamp, Metric.value, Metric.is_nan)
            .where(Metric.run_id == run_id)
            .order_by(Metric.key, Metric.step, Metric.timestamp, Metric.value)
        )
    return [tuple(r) for r in rows]


async def events(db) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(Event)) or 0)


async def log(db, run_id: str, points: list[MetricPoint], *, skip_repeats: bool) -> None:
    async with db.unit_of_work() as session:
        await tracking_metrics.log_metrics(
            session, run_id=run_id, points=points, actor="t", skip_repeats=skip_repeats
        )


async def test_repeats_are_kept_once_and_new_points_appended(db):
    run = await make_run(db)
    first = [MetricPoint("acc", 0.9, 0, 1000), MetricPoint("loss", math.nan, 0, 1000)]
    await log(db, run.id, first, skip_repeats=False)
    before = await history(db, run.id)
    count = await events(db)

    # The same points again: nothing appended, no event.
    await log(db, run.id, first, skip_repeats=True)
    assert await history(db, run.id) == before
    assert await events(db) == count

    # A repeat within the batch, and points differing in value or timestamp only, are new.
    again = [
        MetricPoint("acc", 0.9, 0, 1000),
        MetricPoint("acc", 0.8, 0, 1000),
        MetricPoint("acc", 0.8, 0, 1000),
        MetricPoint("acc", 0.9, 0, 2000),
    ]
    await log(db, run.id, again, skip_repeats=True)
    assert await history(db, run.id) == sorted(
        [*before, ("acc", 0, 1000, 0.8, False), ("acc", 0, 2000, 0.9, False)],
        key=lambda r: (r[0], r[1], r[2], r[3] if r[3] is not None else -1),
    )
    assert await events(db) == count + 1


async def test_without_the_flag_every_point_is_appended(db):
    run = await make_run(db)
    point = [MetricPoint("acc", 0.5, 1, 10)]
    await log(db, run.id, point, skip_repeats=False)
    await log(db, run.id, point, skip_repeats=False)
    assert len(await history(db, run.id)) == 2
