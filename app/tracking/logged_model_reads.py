"""Logged model reads: batch reads behind the MLflow face and the GraphQL loaders (one
statement each), and search with MLflow's filter grammar, built as one SQL statement.

A model's metrics are not stored twice: they are the metric points its output runs
logged at the step they output it (the latest point per key and run)."""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import ValidationError, check_count, check_length
from app.tracking.logged_model_models import (
    LoggedModel,
    LoggedModelOutput,
    LoggedModelParam,
    LoggedModelStatus,
    LoggedModelTag,
)
from app.tracking.models import Metric

SEARCH_LIMIT = 1000
EXPERIMENTS_PER_SEARCH_LIMIT = 100
# Beyond this a page token is not one this server gave (and SQL offsets are 64-bit).
OFFSET_LIMIT = 10**12
FILTER_LIMIT = 10_000
# Epoch milliseconds a datetime can hold (years 1 to 9999).
_MS_RANGE = (-62_135_596_800_000, 253_402_300_799_000)


@dataclass(frozen=True)
class ModelMetric:
    key: str
    value: float
    timestamp: int
    step: int
    run_id: str


@dataclass
class Details:
    """What a logged model carries besides its row."""

    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[ModelMetric] = field(default_factory=list)
    outputs: list[tuple[str, int]] = field(default_factory=list)


async def details(session: AsyncSession, *, model_ids: Sequence[str]) -> dict[str, Details]:
    """Params, tags, metrics and outputs of each model, in four statements."""
    out = {model_id: Details() for model_id in model_ids}
    if not out:
        return out
    ids = list(out)
    for p in await session.scalars(
        select(LoggedModelParam)
        .where(col(LoggedModelParam.model_id).in_(ids))
        .order_by(col(LoggedModelParam.key))
    ):
        out[p.model_id].params[p.key] = p.value
    for t in await session.scalars(
        select(LoggedModelTag)
        .where(col(LoggedModelTag.model_id).in_(ids))
        .order_by(col(LoggedModelTag.key))
    ):
        out[t.model_id].tags[t.key] = t.value
    outputs = list(
        await session.scalars(
            select(LoggedModelOutput)
            .where(col(LoggedModelOutput.model_id).in_(ids))
            .order_by(col(LoggedModelOutput.run_id))
        )
    )
    for o in outputs:
        out[o.model_id].outputs.append((o.run_id, o.step))
    if outputs:
        by_run_step: dict[tuple[str, int], list[str]] = {}
        for o in outputs:
            by_run_step.setdefault((o.run_id, o.step), []).append(o.model_id)
        rows = await session.execute(
            select(
                col(Metric.run_id),
                col(Metric.key),
                col(Metric.value),
                col(Metric.is_nan),
                col(Metric.step),
                col(Metric.timestamp),
            )
            .where(tuple_(col(Metric.run_id), col(Metric.step)).in_(list(by_run_step)))
            .order_by(col(Metric.run_id), col(Metric.key), col(Metric.timestamp), col(Metric.id))
        )
        latest: dict[tuple[str, str, int], ModelMetric] = {}
        for run_id, key, value, is_nan, step, timestamp in rows:
            number = float("nan") if is_nan or value is None else float(value)
            latest[(run_id, key, step)] = ModelMetric(key, number, timestamp, step, run_id)
        for (run_id, _key, step), metric in sorted(latest.items()):
            for model_id in by_run_step[(run_id, step)]:
                out[model_id].metrics.append(metric)
    return out


async def logged_models_by_ids(
    session: AsyncSession, *, ids: Sequence[str]
) -> dict[str, LoggedModel]:
    """Logged models by id (deleted ones too: the caller decides whether to show them)."""
    rows = await session.scalars(select(LoggedModel).where(col(LoggedModel.id).in_(list(ids))))
    return {m.id: m for m in rows}


# Search: MLflow's grammar ------------------------------------------------------------

_ATTRIBUTES = {
    "name": "name",
    "model_name": "name",
    "model_id": "id",
    "id": "id",
    "model_type": "model_type",
    "status": "status",
    "source_run_id": "source_run_id",
    "creation_timestamp": "created_at",
    "creation_time": "created_at",
    "created": "created_at",
    "last_updated_timestamp": "updated_at",
    "last_update_time": "updated_at",
}
_TIME_ATTRIBUTES = {"created_at", "updated_at"}
_PREFIXES = {
    "metric": "metrics",
    "metrics": "metrics",
    "param": "params",
    "params": "params",
    "parameter": "params",
    "parameters": "params",
    "tag": "tags",
    "tags": "tags",
    "attribute": "attributes",
    "attributes": "attributes",
    "attr": "attributes",
}
_CLAUSE = re.compile(
    r"""\s*(?P<ident>(?:[A-Za-z_]+\.)?(?:`[^`]+`|"[^"]+"|[\w.\-/:]+))\s*
        (?P<op>>=|<=|!=|=|<|>|(?i:NOT\s+ILIKE|NOT\s+LIKE|ILIKE|LIKE|NOT\s+IN|IN))\s*
        (?P<value>'(?:[^']|'')*'|"[^"]*"|\([^)]*\)|[-+.\w]+)\s*$""",
    re.VERBOSE,
)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_STATUS_NAMES = {
    "LOGGED_MODEL_PENDING": LoggedModelStatus.PENDING,
    "LOGGED_MODEL_READY": LoggedModelStatus.READY,
    "LOGGED_MODEL_UPLOAD_FAILED": LoggedModelStatus.FAILED,
    **{s.value: s for s in LoggedModelStatus},
}


@dataclass(frozen=True)
class Clause:
    kind: str  # attributes | metrics | params | tags
    key: str
    op: str
    value: Any


@dataclass(frozen=True)
class Order:
    field: str
    ascending: bool = True


def _split_and(text: str) -> list[str]:
    """Clauses joined by AND, outside quotes."""
    parts: list[str] = []
    start = 0
    quote: str | None = None
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"`":
            quote = char
        else:
            match = _AND.match(text, i)
            if match and i > start:
                parts.append(text[start:i])
                start = i = match.end()
                continue
        i += 1
    parts.append(text[start:])
    return parts


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "`\"'":
        inner = text[1:-1]
        return inner.replace("''", "'") if text[0] == "'" else inner
    return text


def _literal(text: str) -> Any:
    if text[:1] in "'\"":
        return _unquote(text)
    try:
        return float(text)
    except ValueError:
        raise ValidationError("filter", f"{text!r} is not a quoted string or a number") from None


def parse_filter(text: str | None) -> list[Clause]:
    """MLflow's logged model filter: clauses joined by AND, on attributes (name, model_id,
    model_type, status, source_run_id, creation_timestamp, last_updated_timestamp),
    `metrics.<key>`, `params.<key>` and `tags.<key>`."""
    if text is None or not text.strip():
        return []
    check_length("filter", text, FILTER_LIMIT)
    clauses = []
    for part in _split_and(text):
        match = _CLAUSE.fullmatch(part)
        if match is None:
            raise ValidationError("filter", f"invalid clause {part.strip()!r}")
        ident, op, raw = match["ident"], " ".join(match["op"].upper().split()), match["value"]
        prefix, dot, rest = ident.partition(".")
        if dot and prefix.lower() in _PREFIXES and not ident.startswith(("`", '"')):
            kind, key = _PREFIXES[prefix.lower()], _unquote(rest)
        else:
            kind, key = "attributes", _unquote(ident)
        if kind == "attributes":
            if key not in _ATTRIBUTES:
                raise ValidationError(
                    "filter", f"unknown attribute {key!r}; known: {', '.join(sorted(_ATTRIBUTES))}"
                )
            key = _ATTRIBUTES[key]
        if op in ("IN", "NOT IN"):
            if not raw.startswith("("):
                raise ValidationError("filter", f"{op} takes a parenthesised list")
            items = [s.strip() for s in raw[1:-1].split(",") if s.strip()]
            value: Any = [_literal(s) for s in items]
        else:
            value = _literal(raw)
        numeric = kind == "metrics" or key in _TIME_ATTRIBUTES
        if numeric and not isinstance(value, float):
            raise ValidationError("filter", f"{ident} compares with a number, not {raw}")
        if not numeric and isinstance(value, float):
            raise ValidationError("filter", f"{ident} compares with a quoted string, not {raw}")
        if numeric and op not in ("=", "!=", "<", "<=", ">", ">="):
            raise ValidationError("filter", f"{ident} takes = != < <= > >=, not {op}")
        if not numeric and op in ("<", "<=", ">", ">="):
            raise ValidationError("filter", f"{ident} takes = != LIKE ILIKE IN, not {op}")
        if kind != "attributes" and op in ("IN", "NOT IN"):
            raise ValidationError("filter", f"{ident} takes = != LIKE ILIKE, not {op}")
        if key == "status":
            value = [_status(v) for v in value] if isinstance(value, list) else _status(value)
        clauses.append(Clause(kind, key, op, value))
    return clauses


def _status(value: str) -> str:
    if value not in _STATUS_NAMES:
        raise ValidationError("filter", f"status {value!r} is not a logged model status")
    return _STATUS_NAMES[value].value


def _compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    match op:
        case "=":
            return column == value
        case "!=":
            return column != value
        case "<":
            return column < value
        case "<=":
            return column <= value
        case ">":
            return column > value
        case ">=":
            return column >= value
        case "LIKE":
            return column.like(value)
        case "NOT LIKE":
            return ~column.like(value)
        case "ILIKE":
            return func.lower(column).like(func.lower(value))
        case "NOT ILIKE":
            return ~func.lower(column).like(func.lower(value))
        case "IN":
            return column.in_(value)
        case _:
            return column.not_in(value)


def _ms_to_datetime(value: float) -> datetime:
    if not _MS_RANGE[0] <= value <= _MS_RANGE[1]:  # NaN too
        raise ValidationError("filter", f"{value!r} is not a time in epoch milliseconds")
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def _condition(clause: Clause) -> ColumnElement[bool]:
    if clause.kind == "attributes":
        column = getattr(LoggedModel, clause.key)
        value = clause.value
        if clause.key in _TIME_ATTRIBUTES:
            value = _ms_to_datetime(value)
        return _compare(col(column), clause.op, value)
    if clause.kind == "params":
        return exists().where(
            col(LoggedModelParam.model_id) == col(LoggedModel.id),
            col(LoggedModelParam.key) == clause.key,
            _compare(col(LoggedModelParam.value), clause.op, clause.value),
        )
    if clause.kind == "tags":
        return exists().where(
            col(LoggedModelTag.model_id) == col(LoggedModel.id),
            col(LoggedModelTag.key) == clause.key,
            _compare(col(LoggedModelTag.value), clause.op, clause.value),
        )
    return exists().where(
        col(LoggedModelOutput.model_id) == col(LoggedModel.id),
        col(Metric.run_id) == col(LoggedModelOutput.run_id),
        col(Metric.step) == col(LoggedModelOutput.step),
        col(Metric.key) == clause.key,
        _compare(col(Metric.value), clause.op, clause.value),
    )


def _metric_value(key: str) -> Any:
    """The model's latest value of metric `key` (at its output step), for ordering."""
    return (
        select(col(Metric.value))
        .join(
            LoggedModelOutput,
            and_(
                col(LoggedModelOutput.run_id) == col(Metric.run_id),
                col(LoggedModelOutput.step) == col(Metric.step),
            ),
        )
        .where(col(LoggedModelOutput.model_id) == col(LoggedModel.id), col(Metric.key) == key)
        .order_by(col(Metric.timestamp).desc(), col(Metric.id).desc())
        .limit(1)
        .correlate(LoggedModel)
        .scalar_subquery()
    )


_ORDER_FIELDS = {**_ATTRIBUTES}


def _order_columns(orders: Sequence[Order]) -> list[Any]:
    columns: list[Any] = []
    for i, order in enumerate(orders):
        prefix, dot, rest = order.field.partition(".")
        if dot and _PREFIXES.get(prefix.lower()) == "metrics":
            value = _metric_value(_unquote(rest))
            # Models without the metric come last either way.
            columns.append(value.is_(None))
        elif order.field in _ORDER_FIELDS:
            value = col(getattr(LoggedModel, _ORDER_FIELDS[order.field]))
        else:
            raise ValidationError(
                f"orderBy[{i}].fieldName",
                f"cannot order by {order.field!r}: use an attribute or metrics.<key>",
            )
        columns.append(value.asc() if order.ascending else value.desc())
    columns += [col(LoggedModel.created_at).desc(), col(LoggedModel.id)]
    return columns


async def search_logged_models(
    session: AsyncSession,
    *,
    experiment_ids: Sequence[int],
    filter: str | None = None,
    order_by: Sequence[Order] = (),
    offset: int = 0,
    limit: int = 100,
    include_deleted: bool = False,
) -> tuple[list[LoggedModel], bool]:
    """Models of the experiments that match `filter`, in `order_by` (then newest first):
    the page at `offset` and whether more follow."""
    check_count("experimentIds", len(experiment_ids), EXPERIMENTS_PER_SEARCH_LIMIT)
    if limit < 1 or limit > SEARCH_LIMIT:
        raise ValidationError("maxResults", f"must be between 1 and {SEARCH_LIMIT}", SEARCH_LIMIT)
    if offset < 0 or offset > OFFSET_LIMIT:
        raise ValidationError("pageToken", "is not a page of this search")
    clauses = parse_filter(filter)
    statement = select(LoggedModel)
    if experiment_ids:
        statement = statement.where(col(LoggedModel.experiment_id).in_(list(experiment_ids)))
    if not include_deleted:
        statement = statement.where(col(LoggedModel.deleted_at).is_(None))
    for clause in clauses:
        statement = statement.where(_condition(clause))
    statement = statement.order_by(*_order_columns(order_by)).offset(offset).limit(limit + 1)
    found = list(await session.scalars(statement))
    return found[:limit], len(found) > limit
