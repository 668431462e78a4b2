"""Tracking reads: run search and best runs, metric history, and the batch reads behind
the GraphQL loaders (one statement per batch)."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.db.pagination import Page, SortKey, fetch_page, fetch_pages_per_parent
from app.db.types import stored
from app.errors import (
    check_length,
)
from app.tracking.models import (
    KEY_LIMIT,
    Experiment,
    LatestMetric,
    Metric,
    Param,
    Run,
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
from app.tracking.service import require_experiment


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
