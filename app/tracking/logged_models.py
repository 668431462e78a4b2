"""Logged models: what a run produced (MLflow 3's LoggedModel). Created PENDING while its
files upload, finalized READY or FAILED; params written once, tags editable, the runs
that output it at a step. Its files are a manifest in app/artifacts; registering a
version from `models:/<id>` snapshots that manifest (`logged_model_manifest`).

A model's metrics are not stored twice: they are the metric points its output runs
logged at the step they output it (the latest point per key and run)."""

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.artifacts import service as artifact_service
from app.db.types import utcnow
from app.errors import (
    ConflictError,
    NotFoundError,
    ValidationError,
    check_count,
    check_key,
    check_length,
    check_name,
)
from app.events.models import EventType
from app.events.service import record_event
from app.tracking.logged_model_models import (
    LOGGED_MODEL_TAG_VALUE_LIMIT,
    MODEL_TYPE_LIMIT,
    STATUS_MESSAGE_LIMIT,
    LoggedModel,
    LoggedModelOutput,
    LoggedModelParam,
    LoggedModelStatus,
    LoggedModelTag,
)
from app.tracking.models import (
    KEY_LIMIT,
    NAME_LIMIT,
    PARAM_VALUE_LIMIT,
    Experiment,
    Metric,
    Run,
)

MODEL_ID_PREFIX = "m-"
PARAMS_PER_CALL_LIMIT = 1000
TAGS_PER_CALL_LIMIT = 100
OUTPUTS_PER_CALL_LIMIT = 100
SEARCH_LIMIT = 1000
EXPERIMENTS_PER_SEARCH_LIMIT = 100
MODEL_SOURCE = "models:/"


def new_model_id() -> str:
    return f"{MODEL_ID_PREFIX}{uuid.uuid4().hex}"


def check_model_id(field: str, value: str) -> str:
    """`m-` and 32 hexadecimal digits, or a ValidationError naming `field`."""
    hexpart = value.removeprefix(MODEL_ID_PREFIX)
    if (
        not value.startswith(MODEL_ID_PREFIX)
        or len(hexpart) != 32
        or not all(c in "0123456789abcdef" for c in hexpart)
    ):
        raise ValidationError(field, "must be a logged model id: 'm-' and 32 hexadecimal digits")
    return value


def _check_params(field: str, params: dict[str, str]) -> None:
    check_count(field, len(params), PARAMS_PER_CALL_LIMIT)
    for key, value in params.items():
        check_key(f"{field}.key", key, KEY_LIMIT)
        check_length(f"{field}[{key}].value", value, PARAM_VALUE_LIMIT)


def _check_tags(field: str, tags: dict[str, str]) -> None:
    check_count(field, len(tags), TAGS_PER_CALL_LIMIT)
    for key, value in tags.items():
        check_key(f"{field}.key", key, KEY_LIMIT)
        check_length(f"{field}[{key}].value", value, LOGGED_MODEL_TAG_VALUE_LIMIT)


async def get_logged_model(
    session: AsyncSession,
    *,
    model_id: str,
    allow_deleted: bool = False,
    field: str = "modelId",
    lock: bool = False,
) -> LoggedModel:
    """The logged model with this id, or NotFoundError naming `field` (also when deleted,
    unless `allow_deleted`)."""
    statement = select(LoggedModel).where(col(LoggedModel.id) == model_id)
    if lock and session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    model = (await session.scalars(statement)).one_or_none()
    if model is None or (model.deleted_at is not None and not allow_deleted):
        raise NotFoundError("logged model", field, model_id)
    return model


async def create_logged_model(
    session: AsyncSession,
    *,
    experiment_id: int,
    name: str | None = None,
    source_run_id: str | None = None,
    model_type: str | None = None,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    actor: str,
) -> LoggedModel:
    """A new PENDING logged model in the experiment (a generated name when none is given),
    with its LOGGED_MODEL_CREATED event."""
    params = params or {}
    tags = tags or {}
    model_id = new_model_id()
    if name is None or name == "":
        name = f"model-{model_id[2:10]}"
    check_name("name", name, NAME_LIMIT)
    check_length("modelType", model_type, MODEL_TYPE_LIMIT)
    _check_params("params", params)
    _check_tags("tags", tags)
    experiment = await session.get(Experiment, experiment_id)
    if experiment is None or getattr(experiment, "deleted_at", None) is not None:
        raise NotFoundError("experiment", "experimentId", experiment_id)
    if source_run_id is not None:
        run = await session.get(Run, source_run_id)
        if run is None:
            raise NotFoundError("run", "sourceRunId", source_run_id)
    now = utcnow()
    model = LoggedModel(
        id=model_id,
        experiment_id=experiment_id,
        name=name,
        source_run_id=source_run_id,
        model_type=model_type or None,
        status=LoggedModelStatus.PENDING,
        created_at=now,
        updated_at=now,
    )
    session.add(model)
    await session.flush()
    session.add_all(LoggedModelParam(model_id=model_id, key=k, value=v) for k, v in params.items())
    session.add_all(LoggedModelTag(model_id=model_id, key=k, value=v) for k, v in tags.items())
    await session.flush()
    await record_event(
        session,
        type=EventType.LOGGED_MODEL_CREATED,
        actor=actor,
        payload={
            "modelId": model_id,
            "name": name,
            "experimentId": experiment_id,
            "sourceRunId": source_run_id,
        },
    )
    return model


async def _changed(
    session: AsyncSession, model: LoggedModel, *, actor: str, change: dict[str, Any]
) -> None:
    model.updated_at = utcnow()
    await session.flush()
    await record_event(
        session,
        type=EventType.LOGGED_MODEL_UPDATED,
        actor=actor,
        payload={"modelId": model.id, **change},
    )


async def finalize_logged_model(
    session: AsyncSession,
    *,
    model_id: str,
    status: LoggedModelStatus,
    status_message: str | None = None,
    actor: str,
) -> LoggedModel:
    """Mark the model READY (its files are complete) or FAILED. Finalizing again with the
    same status is a no-op; PENDING is not a final status."""
    if status == LoggedModelStatus.PENDING:
        raise ValidationError("status", "must be READY or FAILED")
    check_length("statusMessage", status_message, STATUS_MESSAGE_LIMIT)
    model = await get_logged_model(session, model_id=model_id, lock=True)
    if model.status == status and status_message is None:
        return model
    previous = model.status
    model.status = status
    if status_message is not None:
        model.status_message = status_message
    await _changed(
        session, model, actor=actor, change={"status": str(status), "from": str(previous)}
    )
    return model


async def delete_logged_model(session: AsyncSession, *, model_id: str, actor: str) -> LoggedModel:
    """Hide the model (its rows and files stay; versions that snapshotted it keep theirs)."""
    model = await get_logged_model(session, model_id=model_id, lock=True)
    model.deleted_at = model.updated_at = utcnow()
    await session.flush()
    await record_event(
        session, type=EventType.LOGGED_MODEL_DELETED, actor=actor, payload={"modelId": model_id}
    )
    return model


async def set_logged_model_tags(
    session: AsyncSession, *, model_id: str, tags: dict[str, str], actor: str
) -> LoggedModel:
    """Set (add or replace) tags on the model."""
    _check_tags("tags", tags)
    model = await get_logged_model(session, model_id=model_id, lock=True)
    if not tags:
        return model
    existing = {
        t.key: t
        for t in await session.scalars(
            select(LoggedModelTag).where(
                col(LoggedModelTag.model_id) == model_id, col(LoggedModelTag.key).in_(list(tags))
            )
        )
    }
    for key, value in tags.items():
        if key in existing:
            existing[key].value = value
        else:
            session.add(LoggedModelTag(model_id=model_id, key=key, value=value))
    await _changed(session, model, actor=actor, change={"tagsSet": sorted(tags)})
    return model


async def delete_logged_model_tag(
    session: AsyncSession, *, model_id: str, key: str, actor: str
) -> LoggedModel:
    """Remove one tag; NotFoundError naming `key` if the model has no such tag."""
    check_key("key", key, KEY_LIMIT)
    model = await get_logged_model(session, model_id=model_id, lock=True)
    removed = await session.execute(
        delete(LoggedModelTag).where(
            col(LoggedModelTag.model_id) == model_id, col(LoggedModelTag.key) == key
        )
    )
    if not getattr(removed, "rowcount", 0):
        raise NotFoundError("logged model tag", "key", key)
    await _changed(session, model, actor=actor, change={"tagDeleted": key})
    return model


async def log_logged_model_params(
    session: AsyncSession, *, model_id: str, params: dict[str, str], actor: str
) -> LoggedModel:
    """Add params; a key already logged keeps its value (a different one is a ConflictError)."""
    _check_params("params", params)
    model = await get_logged_model(session, model_id=model_id, lock=True)
    if not params:
        return model
    existing = {
        p.key: p.value
        for p in await session.scalars(
            select(LoggedModelParam).where(
                col(LoggedModelParam.model_id) == model_id,
                col(LoggedModelParam.key).in_(list(params)),
            )
        )
    }
    new = {}
    for key, value in params.items():
        if key in existing:
            if existing[key] != value:
                raise ConflictError(
                    f"params[{key}].value",
                    f"param {key!r} of logged model {model_id} is already {existing[key]!r}",
                    expected=existing[key],
                    actual=value,
                )
        else:
            new[key] = value
    if not new:
        return model
    session.add_all(LoggedModelParam(model_id=model_id, key=k, value=v) for k, v in new.items())
    await _changed(session, model, actor=actor, change={"paramsLogged": sorted(new)})
    return model


async def log_outputs(
    session: AsyncSession, *, run_id: str, outputs: Sequence[tuple[str, int]], actor: str
) -> None:
    """Record that the run produced each (model id, step); logging it again moves the step."""
    check_count("models", len(outputs), OUTPUTS_PER_CALL_LIMIT)
    if await session.get(Run, run_id) is None:
        raise NotFoundError("run", "runId", run_id)
    for i, (model_id, step) in enumerate(outputs):
        model = await get_logged_model(session, model_id=model_id, field=f"models[{i}].modelId")
        if step < 0:
            raise ValidationError(f"models[{i}].step", "must not be negative")
        output = await session.get(LoggedModelOutput, (model_id, run_id))
        if output is None:
            session.add(LoggedModelOutput(model_id=model_id, run_id=run_id, step=step))
        elif output.step == step:
            continue
        else:
            output.step = step
        await _changed(
            session, model, actor=actor, change={"outputOf": {"runId": run_id, "step": step}}
        )


# ---------------------------------------------------------------------------------------
# Reads


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


async def outputs_by_runs(
    session: AsyncSession, *, run_ids: Sequence[str]
) -> dict[str, list[tuple[str, int]]]:
    """(model id, step) of each model each run output."""
    out: dict[str, list[tuple[str, int]]] = {run_id: [] for run_id in run_ids}
    if not run_ids:
        return out
    for o in await session.scalars(
        select(LoggedModelOutput)
        .where(col(LoggedModelOutput.run_id).in_(list(run_ids)))
        .order_by(col(LoggedModelOutput.run_id), col(LoggedModelOutput.model_id))
    ):
        out[o.run_id].append((o.model_id, o.step))
    return out


# Search ---------------------------------------------------------------------------------

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
    check_length("filter", text, 10_000)
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
    return datetime.fromtimestamp(value / 1000, tz=utcnow().tzinfo)


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
    if offset < 0:
        raise ValidationError("pageToken", "must not point before the first result")
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


# Files ----------------------------------------------------------------------------------


Manifest = list[tuple[str, str, int]]


def parse_model_source(source: str) -> str | None:
    """The model id of a `models:/m-<hex>` source, or None for any other source."""
    if not source.startswith(MODEL_SOURCE):
        return None
    rest = source.removeprefix(MODEL_SOURCE).strip("/")
    if not rest.startswith(MODEL_ID_PREFIX) or "/" in rest:
        return None
    return check_model_id("source", rest)


async def logged_model_manifest(
    session: AsyncSession, *, model_id: str, field: str = "source"
) -> Manifest:
    """A snapshot of a READY logged model's files as (path, digest, size), their blobs held
    against gc until the caller's unit of work commits: what a model version registered
    from `models:/<model_id>` owns. NotFoundError, ConflictError (not READY, or its files
    changed meanwhile) or ValidationError (no files), each naming `field`."""
    model = await get_logged_model(session, model_id=model_id, field=field)
    if model.status != LoggedModelStatus.READY:
        raise ConflictError(
            field,
            f"logged model {model_id} is {model.status}: only a READY model's files are complete",
            expected=LoggedModelStatus.READY.value,
            actual=model.status.value,
        )
    found = await artifact_service.list_model_artifacts(session, model_id=model_id)
    sizes = await artifact_service.hold_blobs(session, digests=[f.digest for f in found])
    if len(sizes) < len({f.digest for f in found}):
        raise ConflictError(field, "the logged model's files changed meanwhile; try again")
    if not found:
        raise ValidationError(field, f"logged model {model_id} has no files")
    return [(f.path, f.digest, sizes[f.digest]) for f in found]
