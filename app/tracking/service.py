"""Experiments, runs, params, tags and metrics. Services flush; the unit of work commits."""

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.db.dialect import core_table, upsert_insert
from app.db.pagination import Page, SortKey, fetch_page, fetch_pages_per_parent
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
)
from app.events.models import EventType
from app.events.service import record_event
from app.tracking.models import (
    DESCRIPTION_LIMIT,
    KEY_LIMIT,
    METRIC_BATCH_LIMIT,
    NAME_LIMIT,
    PARAM_VALUE_LIMIT,
    TAG_VALUE_LIMIT,
    Experiment,
    LatestMetric,
    Metric,
    Param,
    Run,
    RunStatus,
    RunTag,
)
from app.tracking.search import (
    Aggregate,
    Goal,
    RunFilter,
    RunOrder,
    best_run_query,
    ranked_runs_query,
    runs_query,
)

PARAMS_PER_CALL_LIMIT = 1000
# Keys in a unit of work's session.info, read after commit by the live metric feed.
LOGGED_METRICS = "modelgraph.logged_metrics"
ENDED_RUNS = "modelgraph.ended_runs"


@dataclass(frozen=True)
class MetricSeries:
    """Many points of one key, as columns: the compact form of a batch."""

    key: str
    values: Sequence[float]
    # None means 0, 1, 2, … for steps and now for timestamps.
    steps: Sequence[int] | None = None
    timestamps: Sequence[int] | None = None


@dataclass(frozen=True)
class MetricPoint:
    key: str
    value: float
    step: int = 0
    # Milliseconds since the epoch, as MLflow sends them; None means now.
    timestamp: int | None = None


def _check_experiment_fields(name: str, description: str | None, tags: dict[str, str]) -> None:
    check_name("name", name, NAME_LIMIT)
    check_length("description", description, DESCRIPTION_LIMIT)
    check_tags("tags", tags, key_limit=KEY_LIMIT, value_limit=TAG_VALUE_LIMIT)


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


async def list_experiments(
    session: AsyncSession, *, first: int, after: str | None
) -> Page[Experiment]:
    """Experiments in creation order."""
    keys = [SortKey(Experiment.id)]
    return await fetch_page(session, Experiment, select(Experiment), keys, first=first, after=after)


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


async def start_run(
    session: AsyncSession,
    *,
    experiment: str,
    name: str | None = None,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    start_time: datetime | None = None,
    actor: str,
) -> Run:
    """A new RUNNING run in `experiment` (created if missing), with its params and tags."""
    check_name("name", name, NAME_LIMIT, required=False)
    params, tags = params or {}, tags or {}
    _check_params(params)
    check_tags("tags", tags, key_limit=KEY_LIMIT, value_limit=TAG_VALUE_LIMIT)
    exp = await ensure_experiment(session, name=experiment, actor=actor)
    run = Run(
        id=uuid.uuid4().hex,
        experiment_id=stored(exp.id),
        name=name,
        status=RunStatus.RUNNING,
        start_time=check_datetime("startTime", start_time) or utcnow(),
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
        payload={"runId": run.id, "experiment": exp.name},
    )
    return run


async def require_run(session: AsyncSession, *, run_id: str, field: str = "runId") -> Run:
    """The run with this id, or NotFoundError naming `field`."""
    run = await session.get(Run, run_id)
    if run is None:
        raise NotFoundError("run", field, run_id)
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
    run = await require_run(session, run_id=run_id)
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
    run = await require_run(session, run_id=run_id)
    if not tags:
        return run
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
    run = await require_run(session, run_id=run_id)
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


def _summarize(rows: list[dict]) -> list[dict]:
    """Per key: the last point (highest step, then timestamp), and min and max of non-NaN values."""
    summary: dict[str, dict] = {}
    for row in rows:
        s = summary.get(row["key"])
        value = row["value"]
        if s is None:
            summary[row["key"]] = {**row, "min_value": value, "max_value": value}
            continue
        if (row["step"], row["timestamp"]) >= (s["step"], s["timestamp"]):
            s.update(
                value=value, is_nan=row["is_nan"], step=row["step"], timestamp=row["timestamp"]
            )
        if value is not None:
            s["min_value"] = value if s["min_value"] is None else min(s["min_value"], value)
            s["max_value"] = value if s["max_value"] is None else max(s["max_value"], value)
    return list(summary.values())


def _keep_extreme(
    current: ColumnElement[Any], incoming: ColumnElement[Any], *, smaller: bool
) -> ColumnElement[Any]:
    better = incoming < current if smaller else incoming > current
    return case(
        (current.is_(None), incoming),
        (incoming.is_(None), current),
        (better, incoming),
        else_=current,
    )


async def log_metrics(
    session: AsyncSession,
    *,
    run_id: str,
    points: Sequence[MetricPoint] = (),
    series: Sequence[MetricSeries] = (),
    actor: str,
    max_points: int = METRIC_BATCH_LIMIT,
) -> Run:
    """Append a batch (points, and/or whole series per key) to the history and fold it
    into LatestMetric, in bulk."""
    total = len(points) + sum(len(s.values) for s in series)
    check_count("points", total, max_points)
    run = await require_run(session, run_id=run_id)
    now_ms = int(time.time() * 1000)
    rows = []
    # Keys repeat across a batch: each distinct one is checked once.
    checked: set[str] = set()
    for i, p in enumerate(points):
        if p.key not in checked:
            check_key(f"points[{i}].key", p.key, KEY_LIMIT)
            checked.add(p.key)
        nan = p.value != p.value
        rows.append(
            {
                "run_id": run_id,
                "key": p.key,
                "value": None if nan else p.value,
                "is_nan": nan,
                "step": p.step,
                "timestamp": now_ms if p.timestamp is None else p.timestamp,
            }
        )
    for i, s in enumerate(series):
        check_key(f"series[{i}].key", s.key, KEY_LIMIT)
        n = len(s.values)
        steps = s.steps if s.steps is not None else range(n)
        stamps = s.timestamps if s.timestamps is not None else [now_ms] * n
        for name, column in (("steps", steps), ("timestamps", stamps)):
            if len(column) != n:
                raise ValidationError(
                    f"series[{i}].{name}", f"has {len(column)} items but values has {n}"
                )
        rows += [
            {
                "run_id": run_id,
                "key": s.key,
                "value": None if v != v else v,
                "is_nan": v != v,
                "step": step,
                "timestamp": ts,
            }
            for v, step, ts in zip(s.values, steps, stamps, strict=True)
        ]
    if not rows:
        return run
    # Core executemany: the ORM would add one INSERT ... RETURNING per row.
    await session.execute(insert(core_table(Metric)), rows)
    summary = sorted(_summarize(rows), key=lambda r: r["key"])  # lock order, as in log_params
    for row in summary:
        row["experiment_id"] = run.experiment_id
    table = core_table(LatestMetric)
    stmt = upsert_insert(session, table)
    new = stmt.excluded
    newer = (new.step > table.c.step) | (
        (new.step == table.c.step) & (new.timestamp >= table.c.timestamp)
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["run_id", "key"],
        set_={
            "value": case((newer, new.value), else_=table.c.value),
            "is_nan": case((newer, new.is_nan), else_=table.c.is_nan),
            "step": case((newer, new.step), else_=table.c.step),
            "timestamp": case((newer, new.timestamp), else_=table.c.timestamp),
            "min_value": _keep_extreme(table.c.min_value, new.min_value, smaller=True),
            "max_value": _keep_extreme(table.c.max_value, new.max_value, smaller=False),
        },
    )
    await session.execute(stmt, summary)
    # One row per batch, not per point: the audit says who logged how much, when.
    await record_event(
        session,
        type=EventType.METRICS_LOGGED,
        actor=actor,
        payload={"runId": run_id, "points": len(rows), "keys": [r["key"] for r in summary]},
    )
    # For live views once this commits (runMetrics); nothing is sent if it rolls back.
    session.info.setdefault(LOGGED_METRICS, []).append((run_id, rows))
    return run


async def search_runs(
    session: AsyncSession,
    *,
    experiment: str,
    run_filter: RunFilter | None = None,
    order: RunOrder | None = None,
    first: int,
    after: str | None = None,
) -> Page[Run]:
    """A page of an experiment's runs that match `run_filter`, in `order`."""
    exp = await require_experiment(session, name=experiment)
    stmt, keys = runs_query(run_filter, order or RunOrder())
    stmt = stmt.where(col(Run.experiment_id) == exp.id)
    return await fetch_page(session, Run, stmt, keys, first=first, after=after)


async def search_runs_per_experiment(
    session: AsyncSession,
    *,
    experiment_ids: Sequence[int],
    run_filter: RunFilter | None = None,
    order: RunOrder | None = None,
    first: int,
    after: str | None = None,
) -> dict[int, Page[Run]]:
    """search_runs for many experiments (already looked up) in one statement: a list screen."""
    stmt, keys = runs_query(run_filter, order or RunOrder())
    return await fetch_pages_per_parent(
        session,
        Run,
        stmt,
        keys,
        parent=Run.experiment_id,
        parent_ids=experiment_ids,
        first=first,
        after=after,
    )


async def best_run(
    session: AsyncSession,
    *,
    experiment: str,
    metric: str,
    goal: Goal = Goal.MAXIMIZE,
    aggregate: Aggregate = Aggregate.LAST,
    run_filter: RunFilter | None = None,
) -> Run | None:
    """The run with the best value of `metric`; runs without it are never best."""
    check_length("metric", metric, KEY_LIMIT, required=True)
    exp = await require_experiment(session, name=experiment)
    stmt = best_run_query(stored(exp.id), metric, goal, aggregate, run_filter)
    return (await session.execute(stmt)).scalar_one_or_none()


async def best_runs_per_experiment(
    session: AsyncSession,
    *,
    experiment_ids: Sequence[int],
    metric: str,
    goal: Goal = Goal.MAXIMIZE,
    aggregate: Aggregate = Aggregate.LAST,
    run_filter: RunFilter | None = None,
) -> dict[int, Run]:
    """best_run for many experiments (already looked up) in one statement: a list screen."""
    check_length("metric", metric, KEY_LIMIT, required=True)
    stmt, keys = ranked_runs_query(metric, goal, aggregate, run_filter)
    pages = await fetch_pages_per_parent(
        session,
        Run,
        stmt,
        keys,
        parent=col(LatestMetric.experiment_id),
        parent_ids=experiment_ids,
        first=1,
        after=None,
    )
    return {eid: page.items[0] for eid, page in pages.items() if page.items}


async def metric_history(
    session: AsyncSession, *, run_id: str, key: str, first: int, after: str | None = None
) -> Page[Any]:
    """A run's points for `key` (rows of key, value, is_nan, step, timestamp), ordered by
    step, then timestamp."""
    keys = [SortKey(Metric.step), SortKey(Metric.timestamp), SortKey(Metric.id)]
    # Plain rows, not ORM objects: a 10,000-point curve loads several times faster.
    stmt = select(
        col(Metric.key),
        col(Metric.value),
        col(Metric.is_nan),
        col(Metric.step),
        col(Metric.timestamp),
    ).where(col(Metric.run_id) == run_id, col(Metric.key) == key)
    return await fetch_page(session, None, stmt, keys, first=first, after=after)


# Batch reads for per-request loaders: one statement per batch of keys.


async def experiments_by_ids(session: AsyncSession, *, ids: Sequence[int]) -> dict[int, Experiment]:
    """Experiments by id."""
    rows = (await session.execute(select(Experiment).where(col(Experiment.id).in_(ids)))).scalars()
    return {stored(e.id): e for e in rows}


async def runs_by_ids(session: AsyncSession, *, ids: Sequence[str]) -> dict[str, Run]:
    """Runs by id."""
    rows = (await session.execute(select(Run).where(col(Run.id).in_(ids)))).scalars()
    return {r.id: r for r in rows}


async def run_counts(session: AsyncSession, *, experiment_ids: Sequence[int]) -> dict[int, int]:
    """Number of runs per experiment."""
    stmt = (
        select(col(Run.experiment_id), func.count())
        .where(col(Run.experiment_id).in_(experiment_ids))
        .group_by(col(Run.experiment_id))
    )
    return {experiment_id: n for experiment_id, n in (await session.execute(stmt)).all()}


async def params_by_runs(
    session: AsyncSession, *, run_ids: Sequence[str]
) -> dict[str, list[tuple[str, str]]]:
    """Each run's params, ordered by key."""
    stmt = select(col(Param.run_id), col(Param.key), col(Param.value)).where(
        col(Param.run_id).in_(run_ids)
    )
    out: dict[str, list[tuple[str, str]]] = {}
    for run_id, key, value in (
        await session.execute(stmt.order_by(col(Param.run_id), col(Param.key)))
    ).all():
        out.setdefault(run_id, []).append((key, value))
    return out


async def tags_by_runs(
    session: AsyncSession, *, run_ids: Sequence[str]
) -> dict[str, list[tuple[str, str]]]:
    """Each run's tags, ordered by key."""
    stmt = select(col(RunTag.run_id), col(RunTag.key), col(RunTag.value)).where(
        col(RunTag.run_id).in_(run_ids)
    )
    out: dict[str, list[tuple[str, str]]] = {}
    for run_id, key, value in (
        await session.execute(stmt.order_by(col(RunTag.run_id), col(RunTag.key)))
    ).all():
        out.setdefault(run_id, []).append((key, value))
    return out


async def latest_metrics_by_runs(
    session: AsyncSession, *, run_ids: Sequence[str]
) -> dict[str, list[LatestMetric]]:
    """Each run's latest metric values, ordered by key."""
    stmt = select(LatestMetric).where(col(LatestMetric.run_id).in_(run_ids))
    out: dict[str, list[LatestMetric]] = {}
    for lm in (
        await session.execute(stmt.order_by(col(LatestMetric.run_id), col(LatestMetric.key)))
    ).scalars():
        out.setdefault(lm.run_id, []).append(lm)
    return out
