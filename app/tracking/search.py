"""Run search: filters, orderings and the best-run query, built as single SQL statements."""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, select
from sqlalchemy.orm import aliased
from sqlmodel import col

from app.db.pagination import SortKey, order_by
from app.tracking.models import LatestMetric, Param, Run, RunStatus, RunTag


class CompareOp(StrEnum):
    EQ = "EQ"
    NE = "NE"
    GT = "GT"
    GTE = "GTE"
    LT = "LT"
    LTE = "LTE"


class Aggregate(StrEnum):
    LAST = "LAST"
    MIN = "MIN"
    MAX = "MAX"


class Goal(StrEnum):
    MAXIMIZE = "MAXIMIZE"
    MINIMIZE = "MINIMIZE"


class Direction(StrEnum):
    ASC = "ASC"
    DESC = "DESC"


@dataclass(frozen=True)
class MetricCondition:
    key: str
    op: CompareOp
    value: float
    aggregate: Aggregate = Aggregate.LAST


@dataclass(frozen=True)
class RunFilter:
    """Conditions that all hold: on latest metrics, params, tags and status."""

    metrics: tuple[MetricCondition, ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    statuses: tuple[RunStatus, ...] = ()


@dataclass(frozen=True)
class RunOrder:
    """By a metric's value (runs without it come last), or by start time when metric is None."""

    metric: str | None = None
    direction: Direction = Direction.DESC
    aggregate: Aggregate = Aggregate.LAST


def metric_column(table: Any, aggregate: Aggregate) -> Any:
    return {
        Aggregate.LAST: table.value,
        Aggregate.MIN: table.min_value,
        Aggregate.MAX: table.max_value,
    }[aggregate]


def compare_values(actual: float, op: CompareOp, value: float) -> bool:
    """The same comparison in Python (policy rules on a run's values)."""
    return {
        CompareOp.EQ: actual == value,
        CompareOp.NE: actual != value,
        CompareOp.GT: actual > value,
        CompareOp.GTE: actual >= value,
        CompareOp.LT: actual < value,
        CompareOp.LTE: actual <= value,
    }[op]


def _compare(column: Any, op: CompareOp, value: float) -> ColumnElement[bool]:
    return {
        CompareOp.EQ: column == value,
        CompareOp.NE: column != value,
        CompareOp.GT: column > value,
        CompareOp.GTE: column >= value,
        CompareOp.LT: column < value,
        CompareOp.LTE: column <= value,
    }[op]


def filter_conditions(run_filter: RunFilter | None) -> list[ColumnElement[bool]]:
    """WHERE clauses on `Run`, each an indexed EXISTS on a (run_id, key) primary key."""
    if run_filter is None:
        return []
    conditions: list[ColumnElement[bool]] = []
    for cond in run_filter.metrics:
        lm = aliased(LatestMetric)
        conditions.append(
            exists().where(
                col(lm.run_id) == col(Run.id),
                col(lm.key) == cond.key,
                _compare(metric_column(lm, cond.aggregate), cond.op, cond.value),
            )
        )
    for key, value in run_filter.params:
        p = aliased(Param)
        conditions.append(
            exists().where(col(p.run_id) == col(Run.id), col(p.key) == key, col(p.value) == value)
        )
    for key, value in run_filter.tags:
        t = aliased(RunTag)
        conditions.append(
            exists().where(col(t.run_id) == col(Run.id), col(t.key) == key, col(t.value) == value)
        )
    if run_filter.statuses:
        conditions.append(col(Run.status).in_(run_filter.statuses))
    return conditions


def runs_query(run_filter: RunFilter | None, order: RunOrder) -> tuple[Select[Any], list[SortKey]]:
    """Runs that match (scope them to experiments with a WHERE), and the sort keys their
    cursors are made of."""
    stmt = select(Run).where(*filter_conditions(run_filter))
    descending = order.direction == Direction.DESC
    if order.metric is None:
        return stmt, [SortKey(Run.start_time, descending), SortKey(Run.id, descending)]
    lm = aliased(LatestMetric)
    value = metric_column(lm, order.aggregate)
    stmt = stmt.outerjoin(lm, and_(col(lm.run_id) == col(Run.id), col(lm.key) == order.metric))
    # NULLs (no such metric, or NaN) sort last in both directions and keep keyset
    # comparisons NULL-free.
    missing = case((value.is_(None), 1), else_=0)
    keys = [
        SortKey(missing),
        SortKey(func.coalesce(value, 0.0), descending),
        SortKey(Run.start_time),
        SortKey(Run.id),
    ]
    return stmt, keys


def ranked_runs_query(
    metric: str, goal: Goal, aggregate: Aggregate, run_filter: RunFilter | None
) -> tuple[Select[Any], list[SortKey]]:
    """Runs that have `metric` and match, with the keys that rank them best first: the
    value, then the earlier start, then the lower id. Scope it with a WHERE on
    LatestMetric.experiment_id (the leading column of its indexes)."""
    value = metric_column(LatestMetric, aggregate)
    stmt = (
        select(Run)
        .join(LatestMetric, col(LatestMetric.run_id) == col(Run.id))
        .where(col(LatestMetric.key) == metric, value.is_not(None), *filter_conditions(run_filter))
    )
    keys = [SortKey(value, goal == Goal.MAXIMIZE), SortKey(Run.start_time), SortKey(Run.id)]
    return stmt, keys


def best_run_query(
    experiment_id: int,
    metric: str,
    goal: Goal,
    aggregate: Aggregate,
    run_filter: RunFilter | None,
) -> Select[Any]:
    """The best run in one statement: an index seek on (experiment_id, key, value)."""
    stmt, keys = ranked_runs_query(metric, goal, aggregate, run_filter)
    return (
        stmt.where(col(LatestMetric.experiment_id) == experiment_id)
        .order_by(*order_by(keys))
        .limit(1)
    )
