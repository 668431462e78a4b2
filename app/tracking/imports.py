"""Writing history that happened elsewhere (`modelgraph import-mlflow`): experiments and
runs at their original times and ids, their params, tags, metric histories and ends.

The rule of an import: what modelgraph already holds is never changed; only what is
missing is added. So a second import of the same source writes nothing, and an import
after the source moved on adds only the new (new experiments and runs, the points a
still-running run logged since, its end). Each function is one step of a unit of work the
caller opens; each change writes its Event like any other (the actor says it was an
import), so watchers and the audit see imported history as it lands. Params, tags,
points and ends go through the tracking services, which keep their own rules."""

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.db.types import stored, utcnow
from app.errors import ConflictError, ValidationError, check_length, check_name, check_tags
from app.events.models import EventType
from app.events.service import record_event
from app.tracking import logged_models
from app.tracking import metrics as tracking_metrics
from app.tracking import service as tracking_service
from app.tracking.logged_model_models import (
    LOGGED_MODEL_TAG_VALUE_LIMIT,
    MODEL_TYPE_LIMIT,
    LoggedModel,
    LoggedModelStatus,
)
from app.tracking.models import (
    DESCRIPTION_LIMIT,
    KEY_LIMIT,
    METRIC_BATCH_LIMIT,
    NAME_LIMIT,
    PARAM_VALUE_LIMIT,
    TAG_VALUE_LIMIT,
    USER_LIMIT,
    Experiment,
    LatestMetric,
    Metric,
    Param,
    Run,
    RunStatus,
    RunTag,
)

NOTE_TAG = "mlflow.note.content"


@dataclass(frozen=True)
class Point:
    """One metric point as the source holds it (NaN allowed)."""

    key: str
    value: float
    step: int
    timestamp: int


def _point_key(value: float | None, is_nan: bool, step: int, timestamp: int) -> tuple:
    return (step, timestamp, "nan" if is_nan or value is None or value != value else value)


async def import_experiment(
    session: AsyncSession,
    *,
    name: str,
    tags: dict[str, str],
    created_at: datetime | None,
    actor: str,
) -> tuple[Experiment, bool]:
    """The experiment called `name`, created with the source's tags and creation time
    when missing; (it, whether it was created). An existing one is left as it is (a
    deleted source experiment is imported, then marked with `mark_experiment_deleted`)."""
    check_name("name", name, NAME_LIMIT)
    check_tags("tags", tags, key_limit=KEY_LIMIT, value_limit=TAG_VALUE_LIMIT)
    existing = await tracking_service.get_experiment(session, name=name)
    if existing is not None:
        return existing, False
    # MLflow keeps an experiment's description as this tag.
    description = tags.get(NOTE_TAG) or None
    check_length("description", description, DESCRIPTION_LIMIT)
    experiment = Experiment(name=name, tags=tags, description=description)
    if created_at is not None:
        experiment.created_at = created_at
    session.add(experiment)
    await session.flush()
    await record_event(
        session,
        type=EventType.EXPERIMENT_CREATED,
        actor=actor,
        payload={"experiment": name, "imported": True},
    )
    return experiment, True


def _check_run_id(run_id: str) -> str:
    try:
        return uuid.UUID(hex=run_id).hex
    except ValueError:
        raise ValidationError("runId", f"{run_id!r} is not a 32-digit hexadecimal run id") from None


async def import_run(
    session: AsyncSession,
    *,
    run_id: str,
    experiment: Experiment,
    name: str | None,
    start_time: datetime,
    user_id: str | None = None,
    parent_run_id: str | None = None,
    actor: str,
) -> tuple[Run, bool]:
    """The run with the source's id, started at its original time when missing; (it,
    whether it was created). A run of that id in another experiment is a ConflictError.
    The parent is linked when modelgraph has it (parents are imported first)."""
    run_id = _check_run_id(run_id)
    check_name("name", name, NAME_LIMIT, required=False)
    check_length("userId", user_id, USER_LIMIT)
    if parent_run_id is not None and await session.get(Run, parent_run_id) is None:
        parent_run_id = None
    existing = await session.get(Run, run_id)
    if existing is not None:
        if existing.experiment_id != experiment.id:
            raise ConflictError(
                "runId",
                f"run {run_id} already exists in another experiment (id {existing.experiment_id})",
            )
        return existing, False
    run = Run(
        id=run_id,
        experiment_id=stored(experiment.id),
        name=name,
        status=RunStatus.RUNNING,
        start_time=start_time,
        user_id=user_id or None,
        parent_run_id=parent_run_id,
    )
    session.add(run)
    await session.flush()
    await record_event(
        session,
        type=EventType.RUN_STARTED,
        actor=actor,
        payload={"runId": run_id, "experiment": experiment.name, "imported": True},
    )
    return run, True


async def add_missing_params(
    session: AsyncSession, *, run_id: str, params: dict[str, str], actor: str
) -> int:
    """Log the params the run does not have yet (a key it has keeps its value); how many."""
    have = set(
        (await session.execute(select(col(Param.key)).where(col(Param.run_id) == run_id))).scalars()
    )
    missing = {k: v for k, v in params.items() if k not in have}
    if missing:
        await tracking_service.log_params(session, run_id=run_id, params=missing, actor=actor)
    return len(missing)


async def add_missing_tags(
    session: AsyncSession, *, run_id: str, tags: dict[str, str], actor: str
) -> int:
    """Set the tags the run does not have yet (a key it has keeps its value); how many."""
    have = set(
        (
            await session.execute(select(col(RunTag.key)).where(col(RunTag.run_id) == run_id))
        ).scalars()
    )
    missing = {k: v for k, v in tags.items() if k not in have}
    if missing:
        await tracking_service.set_run_tags(session, run_id=run_id, tags=missing, actor=actor)
    return len(missing)


async def missing_points(
    session: AsyncSession, *, run_id: str, key: str, points: Sequence[Point]
) -> list[Point]:
    """The points of `key` the run's history does not hold yet, in their order: each stored
    (step, timestamp, value) matches one source point, so a repeated point is kept as often
    as the source has it, and an import that stopped half-way resumes where it stopped."""
    rows = await session.execute(
        select(
            col(Metric.value), col(Metric.is_nan), col(Metric.step), col(Metric.timestamp)
        ).where(col(Metric.run_id) == run_id, col(Metric.key) == key)
    )
    have = Counter(_point_key(*row) for row in rows.all())
    missing = []
    for p in points:
        k = _point_key(p.value, p.value != p.value, p.step, p.timestamp)
        if have[k]:
            have[k] -= 1
        else:
            missing.append(p)
    return missing


async def append_points(
    session: AsyncSession, *, run_id: str, points: Sequence[Point], actor: str
) -> int:
    """Append points (at most METRIC_BATCH_LIMIT: the caller batches) through the metric
    ingestion service, keeping their steps and timestamps."""
    if not points:
        return 0
    await tracking_metrics.log_metrics(
        session,
        run_id=run_id,
        points=[
            tracking_metrics.MetricPoint(
                key=p.key, value=p.value, step=p.step, timestamp=p.timestamp
            )
            for p in points
        ],
        actor=actor,
        max_points=METRIC_BATCH_LIMIT,
    )
    return len(points)


async def end_if_running(
    session: AsyncSession,
    *,
    run_id: str,
    status: RunStatus,
    end_time: datetime | None,
    actor: str,
) -> bool:
    """End the run as the source ended it, if it is still RUNNING here; whether it did.
    An end time the source put before the start is taken as the start."""
    if status == RunStatus.RUNNING:
        return False
    run = await tracking_service.require_run(session, run_id=run_id)
    if run.status != RunStatus.RUNNING:
        return False
    if end_time is not None and end_time < run.start_time:
        end_time = run.start_time
    await tracking_service.end_run(
        session, run_id=run_id, status=status, end_time=end_time or run.start_time, actor=actor
    )
    return True


async def mark_experiment_deleted(
    session: AsyncSession, *, experiment: Experiment, at: datetime | None, actor: str
) -> bool:
    """Mark an experiment the source deleted as deleted here (hidden by default, never
    lost), at the source's time when known, unless it already is; whether it was."""
    if experiment.deleted_at is not None:
        return False
    experiment.deleted_at = at or utcnow()
    await session.flush()
    await record_event(
        session,
        type=EventType.EXPERIMENT_DELETED,
        actor=actor,
        payload={"experiment": experiment.name, "imported": True},
    )
    return True


async def mark_run_deleted(
    session: AsyncSession, *, run_id: str, at: datetime | None, actor: str
) -> bool:
    """Mark a run the source deleted as deleted here, unless it already is; whether it was.
    Called after its history is imported."""
    run = await tracking_service.require_run(session, run_id=run_id)
    if run.deleted_at is not None:
        return False
    run.deleted_at = at or utcnow()
    await session.flush()
    await record_event(
        session,
        type=EventType.RUN_DELETED,
        actor=actor,
        payload={"runId": run_id, "imported": True},
    )
    return True


async def import_logged_model(
    session: AsyncSession,
    *,
    model_id: str,
    experiment: Experiment,
    name: str,
    source_run_id: str | None,
    model_type: str | None,
    params: dict[str, str],
    tags: dict[str, str],
    created_at: datetime | None,
    actor: str,
) -> tuple[LoggedModel, bool]:
    """The logged model with the source's id, created PENDING (its files come next, then
    `finish_logged_model`) at its original time when missing; (it, whether it was created).
    The source run is linked when modelgraph has it."""
    model_id = logged_models.check_model_id("modelId", model_id)
    check_name("name", name, NAME_LIMIT)
    existing = await session.get(LoggedModel, model_id)
    if existing is not None:
        if existing.experiment_id != experiment.id:
            raise ConflictError(
                "modelId", f"logged model {model_id} already exists in another experiment"
            )
        return existing, False
    check_length("modelType", model_type, MODEL_TYPE_LIMIT)
    check_tags("params", params, key_limit=KEY_LIMIT, value_limit=PARAM_VALUE_LIMIT)
    check_tags("tags", tags, key_limit=KEY_LIMIT, value_limit=LOGGED_MODEL_TAG_VALUE_LIMIT)
    if source_run_id is not None and await session.get(Run, source_run_id) is None:
        source_run_id = None
    model = await logged_models.insert_logged_model(
        session,
        model_id=model_id,
        experiment_id=stored(experiment.id),
        name=name,
        source_run_id=source_run_id,
        model_type=model_type,
        params=params,
        tags=tags,
        at=created_at or utcnow(),
        actor=actor,
        imported=True,
    )
    return model, True


async def finish_logged_model(
    session: AsyncSession,
    *,
    model_id: str,
    status: LoggedModelStatus,
    updated_at: datetime | None,
    actor: str,
) -> bool:
    """Give an imported PENDING logged model the source's final status (READY or FAILED)
    once its files are here; whether it changed."""
    model = await logged_models.get_logged_model(session, model_id=model_id, lock=True)
    if model.status != LoggedModelStatus.PENDING or status == LoggedModelStatus.PENDING:
        return False
    model.status = status
    model.updated_at = max(updated_at or utcnow(), model.created_at)
    await session.flush()
    await record_event(
        session,
        type=EventType.LOGGED_MODEL_UPDATED,
        actor=actor,
        payload={"modelId": model_id, "status": str(status), "from": "PENDING", "imported": True},
    )
    return True


async def latest_positions(session: AsyncSession, *, run_id: str) -> dict[str, tuple[int, int]]:
    """(step, timestamp) of the latest point of each of the run's metrics here: a key whose
    source latest is at the same position has nothing new to import (points are appended
    at later steps or times; one logged since at an earlier position would be missed)."""
    rows = await session.execute(
        select(col(LatestMetric.key), col(LatestMetric.step), col(LatestMetric.timestamp)).where(
            col(LatestMetric.run_id) == run_id
        )
    )
    return {key: (step, timestamp) for key, step, timestamp in rows.all()}
