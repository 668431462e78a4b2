"""Run search: filters, orderings and the best-run query, built as single SQL statements."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, String, and_, case, exists, func, select, type_coerce
from sqlalchemy.orm import aliased
from sqlmodel import col

from app.db.pagination import SortKey, order_by
from app.errors import ValidationError
from app.tracking.filters import Clause, Entity, OrderItem, like_to_glob
from app.tracking.models import (
    Dataset,
    LatestMetric,
    Param,
    Run,
    RunInput,
    RunStatus,
    RunTag,
)


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


def _compare(column: Any, op: CompareOp, value: Any) -> ColumnElement[bool]:
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
    stmt = select(Run).where(col(Run.deleted_at).is_(None), *filter_conditions(run_filter))
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
        .where(
            col(LatestMetric.key) == metric,
            value.is_not(None),
            col(Run.deleted_at).is_(None),
            *filter_conditions(run_filter),
        )
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


# The MLflow grammar (app/tracking/filters.py) compiled to SQL: one statement per page.


class ViewType(StrEnum):
    """Which runs a search sees: MLflow's run_view_type."""

    ACTIVE_ONLY = "ACTIVE_ONLY"
    DELETED_ONLY = "DELETED_ONLY"
    ALL = "ALL"


def view_condition(view: ViewType) -> list[ColumnElement[bool]]:
    if view == ViewType.ACTIVE_ONLY:
        return [col(Run.deleted_at).is_(None)]
    if view == ViewType.DELETED_ONLY:
        return [col(Run.deleted_at).is_not(None)]
    return []


def _text_compare(column: Any, op: str, value: Any, *, sqlite: bool) -> ColumnElement[bool]:
    if op == "=":
        return column == value
    if op == "!=":
        return column != value
    if op == "LIKE":
        # SQLite's LIKE ignores ASCII case; MLflow's LIKE does not: GLOB keeps it exact.
        return column.op("GLOB")(like_to_glob(value)) if sqlite else column.like(value)
    if op == "ILIKE":
        return func.lower(column).like(func.lower(value))
    if op == "IN":
        return column.in_(value)
    if op == "NOT IN":
        return column.not_in(value)
    raise AssertionError(op)  # the parser admits no other


_COMPARE_SIGNS = {
    "=": CompareOp.EQ,
    "!=": CompareOp.NE,
    ">": CompareOp.GT,
    ">=": CompareOp.GTE,
    "<": CompareOp.LT,
    "<=": CompareOp.LTE,
}


def _millis(value: float) -> datetime:
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ValidationError("filter", f"{value} is not a time in epoch milliseconds") from exc


def _attribute(key: str) -> Any:
    return {
        "run_id": col(Run.id),
        "run_name": col(Run.name),
        "status": type_coerce(col(Run.status), String()),
        "user_id": col(Run.user_id),
        "start_time": col(Run.start_time),
        "end_time": col(Run.end_time),
    }[key]


def clause_condition(clause: Clause, *, sqlite: bool) -> ColumnElement[bool]:
    """One parsed clause as a WHERE condition on Run (an indexed EXISTS for keyed values)."""
    if clause.entity == Entity.METRIC:
        lm = aliased(LatestMetric)
        assert isinstance(clause.value, float)
        return exists().where(
            col(lm.run_id) == col(Run.id),
            col(lm.key) == clause.key,
            _compare(col(lm.value), _COMPARE_SIGNS[clause.op], clause.value),
        )
    if clause.entity in (Entity.PARAM, Entity.TAG):
        table: Any = aliased(Param if clause.entity == Entity.PARAM else RunTag)
        keyed = exists().where(col(table.run_id) == col(Run.id), col(table.key) == clause.key)
        if clause.op == "IS NULL":
            return ~keyed
        if clause.op == "IS NOT NULL":
            return keyed
        return keyed.where(_text_compare(col(table.value), clause.op, clause.value, sqlite=sqlite))
    if clause.entity == Entity.DATASET:
        ri, ds = aliased(RunInput), aliased(Dataset)
        column = col(ri.context) if clause.key == "context" else getattr(ds, clause.key)
        return exists().where(
            col(ri.run_id) == col(Run.id),
            col(ds.id) == col(ri.dataset_id),
            _text_compare(column, clause.op, clause.value, sqlite=sqlite),
        )
    column = _attribute(clause.key)
    if isinstance(clause.value, float):
        return _compare(column, _COMPARE_SIGNS[clause.op], _millis(clause.value))
    return _text_compare(column, clause.op, clause.value, sqlite=sqlite)


def _order_keys(item: OrderItem, stmt: Select[Any]) -> tuple[Select[Any], list[SortKey]]:
    """The sort keys for one ordering item, with the outer join it needs: a run without
    the value comes last whichever the direction."""
    descending = not item.ascending
    if item.entity == Entity.ATTRIBUTE:
        column = _attribute(item.key)
        if item.key in ("run_id", "status", "start_time"):
            return stmt, [SortKey(column, descending)]
        filler: Any = col(Run.start_time) if item.key == "end_time" else ""
        missing = case((column.is_(None), 1), else_=0)
        return stmt, [SortKey(missing), SortKey(func.coalesce(column, filler), descending)]
    if item.entity == Entity.METRIC:
        lm = aliased(LatestMetric)
        stmt = stmt.outerjoin(lm, and_(col(lm.run_id) == col(Run.id), col(lm.key) == item.key))
        value: Any = col(lm.value)
        filler = 0.0
    else:
        table: Any = aliased(Param if item.entity == Entity.PARAM else RunTag)
        stmt = stmt.outerjoin(
            table, and_(col(table.run_id) == col(Run.id), col(table.key) == item.key)
        )
        value, filler = col(table.value), ""
    missing = case((value.is_(None), 1), else_=0)
    return stmt, [SortKey(missing), SortKey(func.coalesce(value, filler), descending)]


def _tiebreak(items: Sequence[OrderItem]) -> list[SortKey]:
    """The default order (newest first), then the id: every ordering is total."""
    keys = []
    if not any(i.entity == Entity.ATTRIBUTE and i.key == "start_time" for i in items):
        keys.append(SortKey(Run.start_time, True))
    if not any(i.entity == Entity.ATTRIBUTE and i.key == "run_id" for i in items):
        keys.append(SortKey(Run.id))
    return keys


@dataclass(frozen=True)
class RunSearch:
    """A parsed search: clauses that all hold, an ordering, which runs it sees."""

    clauses: tuple[Clause, ...] = ()
    order: tuple[OrderItem, ...] = ()
    view: ViewType = ViewType.ACTIVE_ONLY


def matching_runs_query(
    search: RunSearch, experiment_ids: Sequence[int] | None, *, sqlite: bool
) -> tuple[Select[Any], list[SortKey]]:
    """Runs of these experiments (all when None) that match, in the search's order."""
    stmt = select(Run).where(
        *view_condition(search.view),
        *(clause_condition(c, sqlite=sqlite) for c in search.clauses),
    )
    if experiment_ids is not None:
        stmt = stmt.where(col(Run.experiment_id).in_(experiment_ids))
    keys: list[SortKey] = []
    for item in search.order:
        stmt, more = _order_keys(item, stmt)
        keys += more
    return stmt, keys + _tiebreak(search.order)


def metric_led_queries(
    search: RunSearch, experiment_ids: Sequence[int] | None, *, sqlite: bool
) -> tuple[tuple[Select[Any], list[SortKey]], tuple[Select[Any], list[SortKey]]]:
    """An ordering that starts with a metric, as two statements: the runs that have the
    metric, read from LatestMetric's (experiment_id, key, value) index as bestRun reads it,
    then the runs without it. Together they are the order matching_runs_query gives."""
    first, rest = search.order[0], search.order[1:]
    lm = aliased(LatestMetric)
    conditions = [
        *view_condition(search.view),
        *(clause_condition(c, sqlite=sqlite) for c in search.clauses),
    ]
    having = (
        select(Run)
        .join(lm, col(lm.run_id) == col(Run.id))
        .where(col(lm.key) == first.key, col(lm.value).is_not(None), *conditions)
    )
    if experiment_ids is not None:
        having = having.where(col(lm.experiment_id).in_(experiment_ids))
    keys = [SortKey(col(lm.value), not first.ascending)]
    for item in rest:
        having, more = _order_keys(item, having)
        keys += more
    has_value = exists().where(
        col(LatestMetric.run_id) == col(Run.id),
        col(LatestMetric.key) == first.key,
        col(LatestMetric.value).is_not(None),
    )
    lacking = select(Run).where(~has_value, *conditions)
    if experiment_ids is not None:
        lacking = lacking.where(col(Run.experiment_id).in_(experiment_ids))
    lacking_keys: list[SortKey] = []
    for item in rest:
        lacking, more = _order_keys(item, lacking)
        lacking_keys += more
    tiebreak = _tiebreak(search.order)
    return (having, keys + tiebreak), (lacking, lacking_keys + tiebreak)


def compare_sql(column: Any, op: str, value: Any, *, sqlite: bool) -> ColumnElement[bool]:
    """A parsed clause's operator on one column: a comparison or a text match."""
    if op in _COMPARE_SIGNS:
        return _compare(column, _COMPARE_SIGNS[op], value)
    return _text_compare(column, op, value, sqlite=sqlite)


def from_millis(value: float) -> datetime:
    return _millis(value)
