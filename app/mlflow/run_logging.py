"""MLflow's endpoints that log into a run: params, metrics (one or a batch), tags and
dataset inputs, under MLflow's batch limits. A face: it reads MLflow's fields, calls the
services; every rule is in the domain."""

from collections import defaultdict
from typing import Any

from app.errors import ConflictError
from app.mlflow.answers import RUN_NAME_TAG
from app.mlflow.fields import read_pairs
from app.mlflow.wire import Call, MlflowError, endpoint, invalid, to_double
from app.tracking import datasets as tracking_datasets
from app.tracking import lifecycle
from app.tracking import metrics as tracking_metrics
from app.tracking import service as tracking_service

# MLflow's limits on one log-batch request (and its messages' wording).
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
MAX_BATCH_ENTITIES = 1000


def _param_conflict(error: ConflictError) -> MlflowError:
    # MLflow answers a changed param as a bad parameter value, not as a state.
    return invalid(f"Changing param values is not allowed. {error.message}")


@endpoint("POST", "runs/log-parameter", operation="log_params")
async def log_parameter(call: Call) -> dict[str, Any]:
    run_id = call.run_id()
    key = call.required_text("key")
    value = call.text("value", default="") or ""
    try:
        async with call.db.unit_of_work() as session:
            await tracking_service.log_params(
                session, run_id=run_id, params={key: value}, actor=call.principal.actor
            )
    except ConflictError as error:
        if error.field.startswith("params"):
            raise _param_conflict(error) from None
        raise
    return {}


def _metric_point(item: Any, index: int | None) -> tuple[str, float, int, int]:
    """(key, value, step, timestamp) of one metric: a log-batch's metrics[index], or the
    fields of a log-metric call (index None)."""
    if isinstance(item, dict):
        key, value = item.get("key"), item.get("value")
        if isinstance(key, str) and key and isinstance(value, float | int):
            stamp, step = item.get("timestamp"), item.get("step", 0)
            if (
                type(stamp) is int
                and type(step) is int
                and -(2**63) <= stamp < 2**63
                and -(2**63) <= step < 2**63
                and not isinstance(value, bool)
            ):
                # The common case, checked without building a field name per point.
                return key, float(value), step, stamp
    return _checked_metric_point(item, "metric" if index is None else f"metrics[{index}]")


def _checked_metric_point(item: Any, at: str) -> tuple[str, float, int, int]:
    if not isinstance(item, dict):
        raise invalid(f"Invalid value for parameter '{at}': a metric object")
    key = item.get("key")
    if not isinstance(key, str) or not key:
        raise invalid(f"Missing value for required parameter '{at}.key'")
    if "value" not in item:
        raise invalid(f"Missing value for required parameter '{at}.value'")
    value = to_double(item["value"], f"{at}.value")
    timestamp = _int64(item.get("timestamp"), f"{at}.timestamp", required=True)
    step = _int64(item.get("step", 0), f"{at}.step", required=False)
    return key, value, step, timestamp


def _int64(value: Any, name: str, *, required: bool) -> int:
    if value is None or value == "":
        if required:
            raise invalid(f"Missing value for required parameter '{name}'")
        return 0
    if isinstance(value, bool):
        raise invalid(f"Invalid value for parameter '{name}': an integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise invalid(f"Invalid value {value!r} for parameter '{name}': an integer") from None
    if not isinstance(value, int) or not -(2**63) <= value < 2**63:
        raise invalid(f"Invalid value for parameter '{name}': a 64-bit integer")
    return value


@endpoint("POST", "runs/log-metric", operation="log_metrics")
async def log_metric(call: Call) -> dict[str, Any]:
    run_id = call.run_id()
    key, value, step, timestamp = _metric_point(call.fields, None)
    async with call.db.unit_of_work() as session:
        await tracking_metrics.log_metrics(
            session,
            run_id=run_id,
            points=[tracking_metrics.MetricPoint(key, value, step, timestamp)],
            actor=call.principal.actor,
            # A point naming a logged model may repeat one the run has (see log_batch).
            skip_repeats=bool(call.text("model_id")),
        )
    return {}


def _check_batch(metrics: int, params: int, tags: int) -> None:
    for what, count, limit in (
        ("metrics", metrics, MAX_BATCH_METRICS),
        ("params", params, MAX_BATCH_PARAMS),
        ("tags", tags, MAX_BATCH_TAGS),
    ):
        if count > limit:
            raise invalid(
                f"A batch logging request can contain at most {limit} {what}. "
                f"Got {count} {what}. Please split up {what} across multiple requests and try "
                "again."
            )
    total = metrics + params + tags
    if total > MAX_BATCH_ENTITIES:
        raise invalid(
            f"A batch logging request can contain at most {MAX_BATCH_ENTITIES} metrics, params "
            f"and tags in total. Got {total}."
        )


@endpoint("POST", "runs/log-batch", operation="log_metrics")
async def log_batch(call: Call) -> dict[str, Any]:
    run_id = call.run_id()
    raw_metrics = call.fields.get("metrics") or []
    if not isinstance(raw_metrics, list):
        raise invalid("Invalid value for parameter 'metrics': a list of metrics")
    params = read_pairs(call, "params")
    tags = read_pairs(call, "tags")
    _check_batch(len(raw_metrics), len(params), len(tags))
    # Points of one key become one series: the bulk, columnar ingestion path. Points that
    # name a logged model are the client linking a run's metrics to the model it just
    # logged: it re-sends points the run has already, which are kept once.
    columns: dict[str, tuple[list[float], list[int], list[int]]] = defaultdict(lambda: ([], [], []))
    linked: list[tracking_metrics.MetricPoint] = []
    for i, item in enumerate(raw_metrics):
        key, value, step, timestamp = _metric_point(item, i)
        if isinstance(item, dict) and item.get("model_id"):
            linked.append(tracking_metrics.MetricPoint(key, value, step, timestamp))
            continue
        values, steps, stamps = columns[key]
        values.append(value)
        steps.append(step)
        stamps.append(timestamp)
    series = [
        tracking_metrics.MetricSeries(key, values, steps, stamps)
        for key, (values, steps, stamps) in columns.items()
    ]
    actor = call.principal.actor
    try:
        async with call.db.unit_of_work() as session:
            if params:
                await tracking_service.log_params(
                    session, run_id=run_id, params=dict(params), actor=actor
                )
            if series:
                await tracking_metrics.log_metrics(
                    session, run_id=run_id, series=series, actor=actor
                )
            if linked:
                await tracking_metrics.log_metrics(
                    session, run_id=run_id, points=linked, actor=actor, skip_repeats=True
                )
            if tags:
                await tracking_service.set_run_tags(
                    session, run_id=run_id, tags=dict(tags), actor=actor
                )
                if RUN_NAME_TAG in dict(tags):
                    await lifecycle.rename_run(
                        session, run_id=run_id, name=dict(tags)[RUN_NAME_TAG], actor=actor
                    )
    except ConflictError as error:
        if error.field.startswith("params"):
            raise _param_conflict(error) from None
        raise
    return {}


@endpoint("POST", "runs/set-tag", operation="set_run_tags")
async def set_tag(call: Call) -> dict[str, Any]:
    run_id = call.run_id()
    key = call.required_text("key")
    value = call.text("value", default="") or ""
    actor = call.principal.actor
    async with call.db.unit_of_work() as session:
        await tracking_service.set_run_tags(session, run_id=run_id, tags={key: value}, actor=actor)
        if key == RUN_NAME_TAG:
            await lifecycle.rename_run(session, run_id=run_id, name=value, actor=actor)
    return {}


@endpoint("POST", "runs/delete-tag", operation="delete_run_tag")
async def delete_tag(call: Call) -> dict[str, Any]:
    run_id = call.run_id()
    key = call.required_text("key")
    async with call.db.unit_of_work() as session:
        await lifecycle.delete_run_tag(session, run_id=run_id, key=key, actor=call.principal.actor)
    return {}


@endpoint("POST", "runs/log-inputs", operation="log_inputs")
async def log_inputs(call: Call) -> dict[str, Any]:
    run_id = call.run_id()
    inputs = []
    for i, item in enumerate(call.objects("datasets")):
        at = f"datasets[{i}]"
        dataset = item.get("dataset")
        if not isinstance(dataset, dict):
            raise invalid(f"Missing value for required parameter '{at}.dataset'")
        tags = item.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, dict) for t in tags):
            raise invalid(f"Invalid value for parameter '{at}.tags': a list of tags")
        fields: dict[str, str | None] = {}
        for name in ("name", "digest", "source_type", "source", "schema", "profile"):
            value = dataset.get(name)
            if value is not None and not isinstance(value, str):
                raise invalid(f"Invalid value for parameter '{at}.dataset.{name}': a string")
            fields[name] = value
        for name in ("name", "digest", "source_type", "source"):
            if not fields[name]:
                raise invalid(f"Missing value for required parameter '{at}.dataset.{name}'")
        input_tags = {}
        for t in tags:
            key, value = t.get("key"), t.get("value", "")
            if not isinstance(key, str) or not isinstance(value, str):
                raise invalid(f"Invalid value for parameter '{at}.tags': string keys and values")
            input_tags[key] = value
        inputs.append(
            tracking_datasets.DatasetInput(
                name=fields["name"] or "",
                digest=fields["digest"] or "",
                source_type=fields["source_type"] or "",
                source=fields["source"] or "",
                schema=fields["schema"],
                profile=fields["profile"],
                tags=input_tags,
            )
        )
    async with call.db.unit_of_work() as session:
        await tracking_datasets.log_inputs(
            session, run_id=run_id, inputs=inputs, actor=call.principal.actor
        )
    return {}
