import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import strawberry

from app.errors import DomainError, ErrorCode
from app.events.live import END, OVERFLOW
from app.graphql.context import Ctx
from app.graphql.tracking.types import MetricPoint
from app.tracking import service as tracking_service
from app.tracking.models import RunStatus

RUN_STATUS_CHECK_SECONDS = 5.0


class MetricsOverflowError(DomainError):
    code = ErrorCode.SLOW_CONSUMER

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"this subscriber fell behind run {run_id}'s metrics and points were dropped; "
            "read metricHistory and subscribe again",
            field="runId",
        )


@strawberry.type(description="The points one logMetrics call committed.")
class MetricPointsLogged:
    points: list[MetricPoint]


@strawberry.type
class TrackingSubscription:
    @strawberry.subscription(
        description="Metric points of a run as they are logged (through this server), for a "
        "live curve; ends when the run ends. Earlier points: metricHistory."
    )
    async def run_metrics(
        self, info: Ctx, run_id: strawberry.ID
    ) -> AsyncGenerator[MetricPointsLogged, None]:
        ctx = info.context
        assert ctx.feed is not None
        # Subscribe before looking at the run, so an end committed in between is not missed.
        queue = ctx.feed.subscribe(str(run_id))
        try:
            with ctx.subscription("runMetrics"):
                if not await running(ctx, str(run_id)):
                    return
                while True:
                    try:
                        item = await asyncio.wait_for(queue.take(), RUN_STATUS_CHECK_SECONDS)
                    except TimeoutError:
                        # The run may have ended through another replica: its end is in
                        # the database even though this process's feed never saw it.
                        if not await running(ctx, str(run_id)):
                            return
                        continue
                    if item is END:
                        return
                    if item is OVERFLOW:
                        raise MetricsOverflowError(str(run_id))
                    points = [MetricPoint.of(_Row(row)) for row in item]
                    ctx.check_active()
                    yield MetricPointsLogged(points=points)
                    ctx.delivered("runMetrics")
        finally:
            ctx.feed.unsubscribe(str(run_id), queue)


async def running(ctx: Any, run_id: str) -> bool:
    async with ctx.read() as session:
        run = await tracking_service.require_run(session, run_id=run_id)
    return run.status == RunStatus.RUNNING


class _Row:
    """A logged row dict seen as a history row (attribute access)."""

    __slots__ = ("is_nan", "key", "step", "timestamp", "value")

    def __init__(self, row: dict) -> None:
        self.key, self.value, self.is_nan = row["key"], row["value"], row["is_nan"]
        self.step, self.timestamp = row["step"], row["timestamp"]
