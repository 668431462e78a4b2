"""Changes to experiments and runs after they are made: rename, tags, soft delete and
restore, resume. Each writes its Event in the caller's unit of work; a change that
changes nothing writes none, so a retry is harmless."""

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.db.types import utcnow
from app.errors import (
    AlreadyExistsError,
    ConflictError,
    NotFoundError,
    ValidationError,
    check_key,
    check_length,
    check_name,
    check_tags,
)
from app.events.models import EventType
from app.events.service import record_event
from app.tracking.models import (
    DEFAULT_EXPERIMENT_ID,
    EXPERIMENT_TAG_VALUE_LIMIT,
    KEY_LIMIT,
    NAME_LIMIT,
    PARENT_RUN_TAG,
    Experiment,
    Run,
    RunStatus,
    RunTag,
)
from app.tracking.service import (
    get_experiment,
    require_active_run,
    require_experiment_by_id,
    require_run,
)


async def rename_experiment(
    session: AsyncSession, *, experiment_id: int, name: str, actor: str
) -> Experiment:
    """Give the experiment a new name; AlreadyExistsError if another has it."""
    check_name("name", name, NAME_LIMIT)
    experiment = await require_experiment_by_id(session, experiment_id=experiment_id)
    if experiment.name == name:
        return experiment
    other = await get_experiment(session, name=name)
    if other is not None:
        raise AlreadyExistsError("experiment", "name", name)
    previous = experiment.name
    experiment.name = name
    experiment.updated_at = utcnow()
    await session.flush()
    await record_event(
        session,
        type=EventType.EXPERIMENT_UPDATED,
        actor=actor,
        payload={"experimentId": experiment_id, "name": name, "previousName": previous},
    )
    return experiment


async def set_experiment_tags(
    session: AsyncSession, *, experiment_id: int, tags: dict[str, str], actor: str
) -> Experiment:
    """Set (or overwrite) tags on an experiment."""
    check_tags("tags", tags, key_limit=KEY_LIMIT, value_limit=EXPERIMENT_TAG_VALUE_LIMIT)
    experiment = await require_experiment_by_id(session, experiment_id=experiment_id)
    current = dict(experiment.tags or {})
    changed = {k: v for k, v in sorted(tags.items()) if current.get(k) != v}
    if not changed:
        return experiment
    # A new dict: the JSON column notices assignment, not mutation in place.
    experiment.tags = {**current, **changed}
    experiment.updated_at = utcnow()
    await session.flush()
    await record_event(
        session,
        type=EventType.EXPERIMENT_UPDATED,
        actor=actor,
        payload={"experimentId": experiment_id, "tags": changed},
    )
    return experiment


async def delete_experiment_tag(
    session: AsyncSession, *, experiment_id: int, key: str, actor: str
) -> Experiment:
    """Remove one tag from an experiment; NotFoundError if it has no such tag."""
    check_key("key", key, KEY_LIMIT)
    experiment = await require_experiment_by_id(session, experiment_id=experiment_id)
    current = dict(experiment.tags or {})
    if key not in current:
        raise NotFoundError("experiment tag", "key", key)
    del current[key]
    experiment.tags = current
    experiment.updated_at = utcnow()
    await session.flush()
    await record_event(
        session,
        type=EventType.EXPERIMENT_UPDATED,
        actor=actor,
        payload={"experimentId": experiment_id, "deletedTags": [key]},
    )
    return experiment


async def delete_experiment(session: AsyncSession, *, experiment_id: int, actor: str) -> Experiment:
    """Soft-delete an experiment and the runs still active in it: hidden, never lost.
    The Default experiment stays."""
    if experiment_id == DEFAULT_EXPERIMENT_ID:
        raise ValidationError("experimentId", "the Default experiment cannot be deleted")
    experiment = await require_experiment_by_id(session, experiment_id=experiment_id)
    if experiment.deleted_at is not None:
        return experiment
    now = utcnow()
    experiment.deleted_at = now
    experiment.updated_at = now
    # The runs deleted with it carry its deletion time: a restore brings back those only.
    result = await session.execute(
        update(Run)
        .where(col(Run.experiment_id) == experiment_id, col(Run.deleted_at).is_(None))
        .values(deleted_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    await record_event(
        session,
        type=EventType.EXPERIMENT_DELETED,
        actor=actor,
        payload={
            "experimentId": experiment_id,
            "experiment": experiment.name,
            "runsDeleted": result.rowcount,  # type: ignore[attr-defined]  # CursorResult
        },
    )
    return experiment


async def restore_experiment(
    session: AsyncSession, *, experiment_id: int, actor: str
) -> Experiment:
    """Bring back a deleted experiment and the runs deleted with it (not those deleted
    on their own before)."""
    experiment = await require_experiment_by_id(session, experiment_id=experiment_id)
    deleted_at = experiment.deleted_at
    if deleted_at is None:
        return experiment
    experiment.deleted_at = None
    experiment.updated_at = utcnow()
    result = await session.execute(
        update(Run)
        .where(col(Run.experiment_id) == experiment_id, col(Run.deleted_at) == deleted_at)
        .values(deleted_at=None)
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    await record_event(
        session,
        type=EventType.EXPERIMENT_RESTORED,
        actor=actor,
        payload={
            "experimentId": experiment_id,
            "experiment": experiment.name,
            "runsRestored": result.rowcount,  # type: ignore[attr-defined]  # CursorResult
        },
    )
    return experiment


async def delete_run(session: AsyncSession, *, run_id: str, actor: str) -> Run:
    """Soft-delete a run: hidden from searches and best runs, never lost."""
    run = await require_run(session, run_id=run_id)
    if run.deleted_at is not None:
        return run
    run.deleted_at = utcnow()
    await session.flush()
    await record_event(session, type=EventType.RUN_DELETED, actor=actor, payload={"runId": run_id})
    return run


async def restore_run(session: AsyncSession, *, run_id: str, actor: str) -> Run:
    """Bring back a deleted run, unless its experiment is deleted (restore that first)."""
    run = await require_run(session, run_id=run_id)
    if run.deleted_at is None:
        return run
    experiment = await require_experiment_by_id(session, experiment_id=run.experiment_id)
    if experiment.deleted_at is not None:
        raise ConflictError(
            "runId",
            f"run {run_id} is in deleted experiment {experiment.name!r}; restore the experiment",
            expected="active",
            actual="deleted",
        )
    run.deleted_at = None
    await session.flush()
    await record_event(session, type=EventType.RUN_RESTORED, actor=actor, payload={"runId": run_id})
    return run


async def rename_run(session: AsyncSession, *, run_id: str, name: str, actor: str) -> Run:
    """Give a run a new name."""
    check_name("name", name, NAME_LIMIT)
    run = await require_active_run(session, run_id=run_id)
    if run.name == name:
        return run
    previous = run.name
    run.name = name
    await session.flush()
    await record_event(
        session,
        type=EventType.RUN_UPDATED,
        actor=actor,
        payload={"runId": run_id, "name": name, "previousName": previous},
    )
    return run


async def resume_run(session: AsyncSession, *, run_id: str, actor: str) -> Run:
    """Put an ended run back to RUNNING (its end time cleared), to log more to it."""
    run = await require_active_run(session, run_id=run_id)
    if run.status == RunStatus.RUNNING:
        return run
    previous = run.status
    run.status = RunStatus.RUNNING
    run.end_time = None
    await session.flush()
    await record_event(
        session,
        type=EventType.RUN_RESUMED,
        actor=actor,
        payload={"runId": run_id, "from": previous.value},
    )
    return run


async def delete_run_tag(session: AsyncSession, *, run_id: str, key: str, actor: str) -> Run:
    """Remove one tag from a run; NotFoundError if it has no such tag."""
    check_length("key", key, KEY_LIMIT, required=True)
    run = await require_active_run(session, run_id=run_id)
    deleted = await session.execute(
        delete(RunTag)
        .where(col(RunTag.run_id) == run_id, col(RunTag.key) == key)
        .returning(col(RunTag.key))
    )
    if deleted.scalar_one_or_none() is None:
        raise NotFoundError("run tag", "key", key)
    if key == PARENT_RUN_TAG:
        run.parent_run_id = None
        await session.flush()
    await record_event(
        session, type=EventType.RUN_TAG_DELETED, actor=actor, payload={"runId": run_id, "key": key}
    )
    return run
