"""Async factories: build state through the services, one unit of work each."""

from typing import Any

from app.db import Database
from app.registry import catalog, lifecycle
from app.registry.stages import Stage
from app.tracking import metrics as tracking_metrics
from app.tracking import service as tracking_service
from app.tracking.models import Run

ACTOR = "test"


async def make_run(
    db: Database,
    *,
    experiment: str = "exp",
    metrics: dict[str, float] | None = None,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    **kwargs: Any,
) -> Run:
    """A run with one point (step 0) per metric."""
    async with db.unit_of_work() as session:
        run = await tracking_service.start_run(
            session, experiment=experiment, params=params, tags=tags, actor=ACTOR, **kwargs
        )
        if metrics:
            points = [tracking_metrics.MetricPoint(k, v, 0) for k, v in metrics.items()]
            await tracking_metrics.log_metrics(session, actor=ACTOR, run_id=run.id, points=points)
    return run


async def make_version(
    db: Database, *, model: str = "model", run_id: str | None = None, stage: Stage | None = None
) -> int:
    """A registered version, walked to `stage` through allowed moves; returns its number."""
    async with db.unit_of_work() as session:
        registered = await catalog.register_version(
            session, model=model, run_id=run_id, source="s3://bucket/model", actor=ACTOR
        )
        version = registered.version
        path = {
            None: [],
            Stage.DEVELOPMENT: [],
            Stage.STAGING: [Stage.STAGING],
            Stage.PRODUCTION: [Stage.STAGING, Stage.PRODUCTION],
            Stage.ARCHIVED: [Stage.ARCHIVED],
        }[stage]
        for step in path:
            await lifecycle.transition_version(
                session, model=model, version=version.version, stage=step, actor=ACTOR
            )
        return version.version
