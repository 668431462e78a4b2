"""Tracking reads: run search and best runs, metric history, and the batch reads behind
the GraphQL loaders (one statement per batch)."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.db.dialect import is_postgres
from app.db.pagination import Page, SortKey, fetch_page, fetch_pages_per_parent
from app.db.types import stored
from app.errors import ValidationError, check_length
from app.tracking.filters import (
    Clause,
    Entity,
    OrderItem,
    parse_filter,
    parse_order_by,
    text_matches,
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
    RunSearch,
    ViewType,
    best_run_query,
    compare_sql,
    from_millis,
    matching_runs_query,
    metric_led_queries,
    ranked_runs_query,
    runs_query,
)
from app.tracking.service import require_experiment

# Which statement of a metric-led search a page token continues: the runs with the
# metric, or those without it.
_WITH, _WITHOUT = "w.", "o."


def parse_search(
    *,
    filter: str | None,
    order_by: Sequence[str] | None = None,
    view: ViewType = ViewType.ACTIVE_ONLY,
    filter_field: str = "filter",
    order_field: str = "orderBy",
) -> RunSearch:
    """A search from MLflow's filter and order_by strings, or a ValidationError."""
    return RunSearch(
        clauses=parse_filter(filter, field=filter_field),
        order=parse_order_by(order_by, field=order_field),
        view=view,
    )


async def search_runs_matching(
    session: AsyncSession,
    *,
    search: RunSearch,
    experiment_ids: Sequence[int] | None,
    first: int,
    after: str | None = None,
    after_field: str = "after",
) -> Page[Run]:
    """A page of the runs of these experiments (every experiment when None) that match,
    across experiments. Ordered by a metric first, it reads the runs with that metric
    from the same index as bestRun, then those without it."""
    sqlite = not is_postgres(session)
    if not search.order or search.order[0].entity != Entity.METRIC:
        stmt, keys = matching_runs_query(search, experiment_ids, sqlite=sqlite)
        return await fetch_page(session, Run, stmt, keys, first=first, after=after)
    (having, having_keys), (lacking, lacking_keys) = metric_led_queries(
        search, experiment_ids, sqlite=sqlite
    )
    if after is not None and not after.startswith((_WITH, _WITHOUT)):
        raise ValidationError(after_field, "is not a cursor this list gave out")
    with_page: Page[Run] | None = None
    if after is None or after.startswith(_WITH):
        cursor = after[len(_WITH) :] if after else None
        with_page = await fetch_page(session, Run, having, having_keys, first=first, after=cursor)
        if with_page.has_next:
            return _MergedPage.of([(_WITH, with_page)], has_next=True)
        first -= len(with_page.items)
        lacking_after = None
    else:
        lacking_after = after[len(_WITHOUT) :]
    rest = await fetch_page(session, Run, lacking, lacking_keys, first=first, after=lacking_after)
    parts = [(_WITH, with_page)] if with_page is not None else []
    return _MergedPage.of([*parts, (_WITHOUT, rest)], has_next=rest.has_next)


@dataclass
class _MergedPage(Page[Run]):
    """Pages of several statements read one after the other; each item's cursor says
    which statement it came from."""

    cursors: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, parts: list[tuple[str, Page[Run]]], *, has_next: bool) -> "_MergedPage":
        items: list[Run] = []
        cursors: list[str] = []
        for prefix, page in parts:
            items += page.items
            cursors += [prefix + page.cursor(i) for i in range(len(page.items))]
        return cls(items=items, has_next=has_next, cursors=cursors)

    def cursor(self, index: int) -> str:
        return self.cursors[index]

    @property
    def end_cursor(self) -> str | None:
        return self.cursors[-1] if self.cursors else None


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
    """Number of runs (not deleted) per experiment."""
    stmt = (
        select(col(Run.experiment_id), func.count())
        .where(col(Run.experiment_id).in_(experiment_ids), col(Run.deleted_at).is_(None))
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


async def children_by_runs(
    session: AsyncSession, *, run_ids: Sequence[str], include_deleted: bool = False
) -> dict[str, list[Run]]:
    """The runs nested directly in each run, oldest first."""
    stmt = select(Run).where(col(Run.parent_run_id).in_(run_ids))
    if not include_deleted:
        stmt = stmt.where(col(Run.deleted_at).is_(None))
    out: dict[str, list[Run]] = {}
    for run in (await session.execute(stmt.order_by(col(Run.start_time), col(Run.id)))).scalars():
        out.setdefault(stored(run.parent_run_id), []).append(run)
    return out


def _experiment_column(key: str) -> Any:
    return {
        "name": col(Experiment.name),
        "experiment_id": col(Experiment.id),
        "creation_time": col(Experiment.created_at),
        "last_update_time": func.coalesce(col(Experiment.updated_at), col(Experiment.created_at)),
    }[key]


async def search_experiments(
    session: AsyncSession,
    *,
    clauses: Sequence[Clause] = (),
    order: Sequence[OrderItem] = (),
    view: ViewType = ViewType.ACTIVE_ONLY,
    offset: int = 0,
    first: int,
) -> tuple[list[Experiment], bool]:
    """A page of the experiments that match (attributes in SQL, tags on the rows read),
    newest first unless `order` says; and whether more follow."""
    stmt = select(Experiment)
    if view == ViewType.ACTIVE_ONLY:
        stmt = stmt.where(col(Experiment.deleted_at).is_(None))
    elif view == ViewType.DELETED_ONLY:
        stmt = stmt.where(col(Experiment.deleted_at).is_not(None))
    tag_clauses = [c for c in clauses if c.entity == Entity.TAG]
    for clause in clauses:
        if clause.entity != Entity.ATTRIBUTE:
            continue
        column = _experiment_column(clause.key)
        value: Any = clause.value
        if clause.key in ("creation_time", "last_update_time"):
            assert isinstance(value, float)
            value = from_millis(value)
        elif clause.key == "experiment_id":
            assert isinstance(value, float)
            value = int(value)
        stmt = stmt.where(compare_sql(column, clause.op, value, sqlite=not is_postgres(session)))
    ordering = [
        _experiment_column(o.key).asc() if o.ascending else _experiment_column(o.key).desc()
        for o in order
    ]
    if not order:
        ordering = [col(Experiment.created_at).desc()]
    stmt = stmt.order_by(*ordering, col(Experiment.id))
    if not tag_clauses:
        rows = list((await session.execute(stmt.offset(offset).limit(first + 1))).scalars())
    else:
        rows = [
            e
            for e in (await session.execute(stmt)).scalars()
            if all(text_matches((e.tags or {}).get(c.key), c.op, c.value) for c in tag_clauses)
        ][offset : offset + first + 1]
    return rows[:first], len(rows) > first
