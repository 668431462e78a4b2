"""Experiments and runs: create, start, end, params and tags. Services flush; the unit
of work commits. Metric ingestion is in metrics.py, batch reads and search in reads.py."""

import uuid
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.db.dialect import core_table, upsert_insert
from app.db.pagination import Page, SortKey, fetch_page
from app.db.types import check_datetime, stored, utcnow
from app.errors import (
    AlreadyExistsError,
    ConflictError,
    NotFoundError,
    ValidationError,
    check_count,
    check_key,
    check_length,
    check_name,
    check_tags,
    storable,
)
from app.events.models import EventType
from app.events.service import record_event
from app.tracking.models import (
    DESCRIPTION_LIMIT,
    EXPERIMENT_TAG_VALUE_LIMIT,
    KEY_LIMIT,
    NAME_LIMIT,
    PARAM_VALUE_LIMIT,
    PARENT_RUN_TAG,
    TAG_VALUE_LIMIT,
    USER_LIMIT,
    Experiment,
    Param,
    Run,
    RunStatus,
    RunTag,
)

PARAMS_PER_CALL_LIMIT = 1000
# Keys in a unit of work's session.info, read after commit by the live metric feed.
ENDED_RUNS = "modelgraph.ended_runs"


def _check_experiment_fields(name: str, description: str | None, tags: dict[str, str]) -> None:
    check_name("name", name, NAME_LIMIT)
    check_length("description", description, DESCRIPTION_LIMIT)
    check_tags("tags", tags, key_limit=KEY_LIMIT, value_limit=EXPERIMENT_TAG_VALUE_LIMIT)


async def get_experiment(session: AsyncSession, *, name: str) -> Experiment | None:
    """The experiment called `name`, or None."""
    return (
        await session.execute(select(Experiment).where(col(Experiment.name) == name))
    ).scalar_one_or_none()


async def require_experiment(
    session: AsyncSession, *, name: str, field: str = "experiment"
) -> Experiment:
    """The experiment called `name`, or NotFoundError naming `field`."""
    experiment = await get_experiment(session, name=name)
    if experiment is None:
        raise NotFoundError("experiment", field, name)
    return experiment


async def require_experiment_by_id(
    session: AsyncSession, *, experiment_id: int, field: str = "experimentId"
) -> Experiment:
    """The experiment with this id, or NotFoundError naming `field`."""
    experiment = await session.get(Experiment, experiment_id)
    if experiment is None:
        raise NotFoundError("experiment", field, experiment_id)
    return experiment


async def list_experiments(
    session: AsyncSession, *, first: int, after: str | None, include_deleted: bool = False
) -> Page[Experiment]:
    """Experiments in creation order; deleted ones only when asked."""
    keys = [SortKey(Experiment.id)]
    stmt = select(Experiment)
    if not include_deleted:
        stmt = stmt.where(col(Experiment.deleted_at).is_(None))
    return await fetch_page(session, Experiment, stmt, keys, first=first, after=after)


async def _insert_experiment(
    session: AsyncSession,
    *,
    name: str,
    description: str | None,
    tags: dict[str, str],
    actor: str,
) -> int | None:
    """Insert the experiment unless the name is taken (race-safe); its id, or None."""
    stmt = (
        upsert_insert(session, core_table(Experiment))
        .values(name=name, description=description, tags=tags, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(col(Experiment.id))
    )
    new_id = (await session.execute(stmt)).scalar_one_or_none()
    if new_id is not None:
        await record_event(
            session, type=EventType.EXPERIMENT_CREATED, actor=actor, payload={"experiment": name}
        )
    return new_id


async def create_experiment(
    session: AsyncSession,
    *,
    name: str,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    actor: str,
) -> Experiment:
    """A new experiment; AlreadyExistsError if the name is taken."""
    tags = tags or {}
    _check_experiment_fields(name, description, tags)
    new_id = await _insert_experiment(
        session, name=name, description=description, tags=tags, actor=actor
    )
    if new_id is None:
        raise AlreadyExistsError("experiment", "name", name)
    return await session.get_one(Experiment, new_id)


async def ensure_experiment(session: AsyncSession, *, name: str, actor: str) -> Experiment:
    """The experiment called `name`, created if missing (safe when two callers race)."""
    check_name("experiment", name, NAME_LIMIT)
    existing = await get_experiment(session, name=name)
    if existing is not None:
        return existing
    await _insert_experiment(session, name=name, description=None, tags={}, actor=actor)
    return await require_experiment(session, name=name)


def check_active_experiment(experiment: Experiment, field: str = "experiment") -> None:
    """Refuse to add to a deleted experiment (restore it first)."""
    if experiment.deleted_at is not None:
        raise ConflictError(
            field,
            f"experiment {experiment.name!r} is deleted; restore it to add runs to it",
            expected="active",
            actual="deleted",
        )


async def start_run(
    session: AsyncSession,
    *,
    experiment: str | None = None,
    experiment_id: int | None = None,
    name: str | None = None,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    start_time: datetime | None = None,
    user_id: str | None = None,
    parent_run_id: str | None = None,
    actor: str,
) -> Run:
    """A new RUNNING run in `experiment` (by name, created if missing) or in the existing
    `experiment_id`, with its params and tags, nested in `parent_run_id` (or in the run
    the tag PARENT_RUN_TAG names)."""
    check_name("name", name, NAME_LIMIT, required=False)
    check_length("userId", user_id, USER_LIMIT)
    params, tags = params or {}, tags or {}
    _check_params(params)
    check_tags("tags", tags, key_limit=KEY_LIMIT, value_limit=TAG_VALUE_LIMIT)
    if experiment_id is not None:
        exp = await require_experiment_by_id(session, experiment_id=experiment_id)
    elif experiment is not None:
        exp = await ensure_experiment(session, name=experiment, actor=actor)
    else:
        raise ValidationError("experiment", "is required")
    check_active_experiment(exp)
    parent_run_id = parent_run_id or tags.get(PARENT_RUN_TAG)
    if parent_run_id is not None:
        await require_run(session, run_id=parent_run_id, field="parentRunId")
    run = Run(
        id=uuid.uuid4().hex,
        experiment_id=stored(exp.id),
        name=name,
        status=RunStatus.RUNNING,
        start_time=check_datetime("startTime", start_time) or utcnow(),
        user_id=user_id,
        parent_run_id=parent_run_id,
    )
    session.add(run)
    await session.flush()
    if params:
        await session.execute(
            insert(core_table(Param)),
            [{"run_id": run.id, "key": k, "value": v} for k, v in params.items()],
        )
    if tags:
        await session.execute(
            insert(core_table(RunTag)),
            [{"run_id": run.id, "key": k, "value": v} for k, v in tags.items()],
        )
    await record_event(
        session,
        type=EventType.RUN_STARTED,
        actor=actor,
        payload={"runId": run.id, "experiment": exp.name, "parentRunId": parent_run_id},
    )
    return run


async def require_run(session: AsyncSession, *, run_id: str, field: str = "runId") -> Run:
    """The run with this id, or NotFoundError naming `field`."""
    # Text no database can hold (NUL, a lone surrogate) names no run either.
    run = await session.get(Run, run_id) if "\x00" not in run_id and storable(run_id) else None
    if run is None:
        raise NotFoundError("run", field, run_id)
    return run


async def require_active_run(session: AsyncSession, *, run_id: str, field: str = "runId") -> Run:
    """require_run, refusing a deleted run: what it logged stays as it was until restored."""
    run = await require_run(session, run_id=run_id, field=field)
    if run.deleted_at is not None:
        raise ConflictError(
            field,
            f"run {run_id} is deleted; restore it to change it",
            expected="active",
            actual="deleted",
        )
    return run


def _check_params(params: dict[str, str]) -> None:
    check_count("params", len(params), PARAMS_PER_CALL_LIMIT)
    for key, value in params.items():
        check_key("params.key", key, KEY_LIMIT)
        check_length(f"params[{key}].value", value, PARAM_VALUE_LIMIT)


async def log_params(
    session: AsyncSession, *, run_id: str, params: dict[str, str], actor: str
) -> Run:
    """Write-once params: a new key is stored, the same value again is a no-op."""
    _check_params(params)
    run = await require_active_run(session, run_id=run_id)
    if not params:
        return run
    inserted = await session.execute(
        upsert_insert(session, core_table(Param))
        .on_conflict_do_nothing(index_elements=["run_id", "key"])
        .returning(col(Param.key)),
        # Key order: concurrent writers to one run lock rows in the same order (no deadlock).
        [{"run_id": run_id, "key": k, "value": v} for k, v in sorted(params.items())],
    )
    new_keys = sorted(inserted.scalars())
    # Read back after the insert: a concurrent writer's value is seen here too.
    stored = dict(
        (
            await session.execute(
                select(col(Param.key), col(Param.value)).where(
                    col(Param.run_id) == run_id, col(Param.key).in_(list(params))
                )
            )
        ).all()
    )
    for key, value in params.items():
        if stored.get(key) != value:
            raise ConflictError(
                f"params[{key}]",
                f"param {key!r} is already {stored.get(key)!r}; params are write-once",
            )
    if new_keys:
        await record_event(
            session,
            type=EventType.PARAMS_LOGGED,
            actor=actor,
            payload={"runId": run_id, "keys": new_keys},
        )
    return run


async def set_run_tags(
    session: AsyncSession, *, run_id: str, tags: dict[str, str], actor: str
) -> Run:
    """Set (or overwrite) tags on a run; tags already at these values are left alone."""
    check_tags("tags", tags, key_limit=KEY_LIMIT, value_limit=TAG_VALUE_LIMIT)
    run = await require_active_run(session, run_id=run_id)
    if not tags:
        return run
    if PARENT_RUN_TAG in tags and tags[PARENT_RUN_TAG] != run.parent_run_id:
        parent = tags[PARENT_RUN_TAG]
        if parent == run_id:
            raise ValidationError(f"tags[{PARENT_RUN_TAG}].value", "a run cannot be its own parent")
        await require_run(session, run_id=parent, field=f"tags[{PARENT_RUN_TAG}].value")
        run.parent_run_id = parent
        await session.flush()
    current = dict(
        (
            await session.execute(
                select(col(RunTag.key), col(RunTag.value)).where(
                    col(RunTag.run_id) == run_id, col(RunTag.key).in_(list(tags))
                )
            )
        ).all()
    )
    changed = {k: v for k, v in sorted(tags.items()) if current.get(k) != v}
    if changed:
        stmt = upsert_insert(session, core_table(RunTag))
        stmt = stmt.on_conflict_do_update(
            index_elements=["run_id", "key"], set_={"value": stmt.excluded.value}
        )
        # Key order: concurrent writers to one run lock rows in the same order.
        await session.execute(
            stmt, [{"run_id": run_id, "key": k, "value": v} for k, v in changed.items()]
        )
        await record_event(
            session,
            type=EventType.RUN_TAGS_SET,
            actor=actor,
            payload={"runId": run_id, "tags": changed},
        )
    return run


async def end_run(
    session: AsyncSession,
    *,
    run_id: str,
    status: RunStatus,
    end_time: datetime | None = None,
    actor: str,
) -> Run:
    """Mark a RUNNING run FINISHED, FAILED or KILLED, at `end_time` (default now), never
    before its start. An ended run stays as it ended: the same end again (the status, and
    the end time or none) returns it unchanged, so a retry is safe; another status or end
    time is a ConflictError naming the stored one."""
    if status == RunStatus.RUNNING:
        raise ValidationError("status", "must be FINISHED, FAILED or KILLED")
    end_time = check_datetime("endTime", end_time)
    run = await require_active_run(session, run_id=run_id)
    previous = run.status
    if previous != RunStatus.RUNNING:
        _check_same_end(run, status, end_time)
        return run
    end_time = end_time or utcnow()
    if end_time < run.start_time:
        raise ValidationError(
            "endTime",
            f"{end_time.isoformat()} is before the run's start time {run.start_time.isoformat()}",
        )
    run.status = status
    run.end_time = end_time
    await session.flush()
    await record_event(
        session,
        type=EventType.RUN_ENDED,
        actor=actor,
        payload={"runId": run.id, "from": previous.value, "status": status.value},
    )
    session.info.setdefault(ENDED_RUNS, []).append(run.id)
    return run


def _check_same_end(run: Run, status: RunStatus, end_time: datetime | None) -> None:
    """Refuse to end an ended run in any other way than it ended."""
    if status != run.status:
        raise ConflictError(
            "status",
            f"run {run.id} already ended {run.status.value}; an ended run cannot be ended "
            f"again as {status.value}",
            expected=status.value,
            actual=run.status.value,
        )
    if end_time is not None and end_time != run.end_time:
        ended = run.end_time.isoformat() if run.end_time else None
        raise ConflictError(
            "endTime",
            f"run {run.id} already ended {run.status.value} at {ended}; an ended run keeps its "
            "end time",
            expected=end_time.isoformat(),
            actual=ended,
        )
