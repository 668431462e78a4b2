"""MLflow's tracking endpoints (experiments, runs, params, metrics, tags, dataset inputs,
run search, metric history) over app.tracking. A face: it reads MLflow's fields, calls the
services and answers in MLflow's proto-JSON; every rule is in the domain."""

import base64
import binascii
import json
import random
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.types import stored
from app.errors import ConflictError, ValidationError
from app.mlflow.uris import run_artifact_uri
from app.mlflow.wire import Call, MlflowError, double, endpoint, invalid, millis, to_double
from app.tracking import datasets as tracking_datasets
from app.tracking import lifecycle
from app.tracking import logged_models as logged_model_service
from app.tracking import metrics as tracking_metrics
from app.tracking import reads as tracking_reads
from app.tracking import service as tracking_service
from app.tracking.filters import parse_experiment_filter, parse_experiment_order_by
from app.tracking.models import (
    DEFAULT_EXPERIMENT_ID,
    PARENT_RUN_TAG,
    Experiment,
    Run,
    RunStatus,
)
from app.tracking.search import ViewType

# MLflow's limits on one log-batch request (and its messages' wording).
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
MAX_BATCH_ENTITIES = 1000
SEARCH_RUNS_DEFAULT = 1000
SEARCH_RUNS_LIMIT = 50_000
SEARCH_EXPERIMENTS_DEFAULT = 1000
SEARCH_EXPERIMENTS_LIMIT = 50_000
HISTORY_PAGE_DEFAULT = 25_000
HISTORY_PAGE_LIMIT = 25_000

RUN_NAME_TAG = "mlflow.runName"
USER_TAG = "mlflow.user"

# ----------------------------------------------------------------------------------------
# Answers: proto-JSON shapes as MLflow's client parses them.


def _key_values(items: Sequence[tuple[str, str]] | dict[str, str]) -> list[dict[str, str]]:
    pairs = items.items() if isinstance(items, dict) else items
    return [{"key": k, "value": v} for k, v in pairs]


def experiment_json(e: Experiment) -> dict[str, Any]:
    experiment_id = stored(e.id)
    return {
        "experiment_id": str(experiment_id),
        "name": e.name,
        "artifact_location": f"mlflow-artifacts:/{experiment_id}",
        "lifecycle_stage": "deleted" if e.deleted else "active",
        "last_update_time": millis(e.last_update_time),
        "creation_time": millis(e.created_at),
        "tags": _key_values(sorted((e.tags or {}).items())),
    }


def run_info_json(run: Run) -> dict[str, Any]:
    info: dict[str, Any] = {
        "run_id": run.id,
        "run_uuid": run.id,
        "experiment_id": str(run.experiment_id),
        "run_name": run.name or "",
        "user_id": run.user_id or "",
        "status": run.status.value,
        "start_time": millis(run.start_time),
        "artifact_uri": run_artifact_uri(run.experiment_id, run.id),
        "lifecycle_stage": "deleted" if run.deleted else "active",
    }
    if run.end_time is not None:
        info["end_time"] = millis(run.end_time)
    return info


async def runs_json(session: AsyncSession, runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Whole runs (info, data, inputs, outputs) in a few statements for the lot."""
    ids = [r.id for r in runs]
    params = await tracking_reads.params_by_runs(session, run_ids=ids)
    tags = await tracking_reads.tags_by_runs(session, run_ids=ids)
    latest = await tracking_reads.latest_metrics_by_runs(session, run_ids=ids)
    inputs = await tracking_datasets.inputs_by_runs(session, run_ids=ids)
    outputs = await logged_model_service.outputs_by_runs(session, run_ids=ids)
    out = []
    for run in runs:
        run_tags = dict(tags.get(run.id, []))
        # The tags MLflow keeps beside its columns answer from the columns.
        if run.name:
            run_tags[RUN_NAME_TAG] = run.name
        if run.parent_run_id:
            run_tags[PARENT_RUN_TAG] = run.parent_run_id
        out.append(
            {
                "info": run_info_json(run),
                "data": {
                    "metrics": [
                        {
                            "key": m.key,
                            "value": double(m.last_value),
                            "timestamp": m.timestamp,
                            "step": m.step,
                        }
                        for m in latest.get(run.id, [])
                    ],
                    "params": _key_values(params.get(run.id, [])),
                    "tags": _key_values(sorted(run_tags.items())),
                },
                "inputs": {
                    "dataset_inputs": [
                        {
                            "tags": _key_values(sorted(i.tags.items())),
                            "dataset": _dataset_json(i.dataset),
                        }
                        for i in inputs.get(run.id, [])
                    ]
                },
                "outputs": {
                    "model_outputs": [
                        {"model_id": model_id, "step": step}
                        for model_id, step in outputs.get(run.id, [])
                    ]
                },
            }
        )
    return out


def _dataset_json(d: Any) -> dict[str, Any]:
    found = {
        "name": d.name,
        "digest": d.digest,
        "source_type": d.source_type,
        "source": d.source,
        "schema": d.schema_,
        "profile": d.profile,
    }
    return {k: v for k, v in found.items() if v is not None}


async def _run_answer(call: Call, run_id: str) -> dict[str, Any]:
    async with call.db.read() as session:
        run = await tracking_service.require_run(session, run_id=run_id)
        return {"run": (await runs_json(session, [run]))[0]}


# ----------------------------------------------------------------------------------------
# Reading MLflow's fields.


def _experiment_id(call: Call, name: str = "experiment_id", *, required: bool = True) -> int:
    text = call.text(name, required=required)
    if text is None:
        return DEFAULT_EXPERIMENT_ID
    try:
        value = int(text)
    except ValueError:
        raise invalid(f"Invalid value {text!r} for parameter '{name}': an experiment id") from None
    if not 0 <= value < 2**31:
        raise invalid(f"Invalid value {text!r} for parameter '{name}': an experiment id")
    return value


def _experiment_ids(call: Call) -> list[int]:
    out = []
    for text in call.texts("experiment_ids"):
        try:
            value = int(text)
        except ValueError:
            raise invalid(
                f"Invalid value {text!r} in parameter 'experiment_ids': experiment ids"
            ) from None
        if not 0 <= value < 2**31:
            raise invalid(f"Invalid value {text!r} in parameter 'experiment_ids': out of range")
        out.append(value)
    return out


def _pairs(call: Call, name: str) -> list[tuple[str, str]]:
    """A repeated {key, value} field; a missing value is the empty string."""
    out = []
    for i, item in enumerate(call.objects(name)):
        key, value = item.get("key"), item.get("value", "")
        if not isinstance(key, str) or not key:
            raise invalid(f"Missing value for required parameter '{name}[{i}].key'")
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise invalid(f"Invalid value for parameter '{name}[{i}].value': a string")
        out.append((key, str(value)))
    return out


def _time(call: Call, name: str) -> datetime | None:
    value = call.integer(name)
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        raise invalid(f"Invalid value {value} for parameter '{name}': epoch milliseconds") from None


def _view(call: Call, name: str) -> ViewType:
    text = call.text(name) or "ACTIVE_ONLY"
    try:
        return ViewType(text.upper())
    except ValueError:
        raise invalid(
            f"Invalid value {text!r} for parameter '{name}': ACTIVE_ONLY, DELETED_ONLY or ALL"
        ) from None


def _max_results(call: Call, default: int, limit: int) -> int:
    value = call.integer("max_results", default=default)
    assert value is not None
    if value < 1 or value > limit:
        raise invalid(
            f"Invalid value {value} for parameter 'max_results' supplied. "
            f"It must be at least 1 and at most {limit}"
        )
    return value


def _offset_token(offset: int) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def _read_offset_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.b64decode(token, validate=True))["offset"]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise invalid("Invalid page token: it was not given out by this server") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset < 2**31:
        raise invalid("Invalid page token: it was not given out by this server")
    return offset


# Names for runs started without one, as MLflow's server gives them.
_ADJECTIVES = (
    "bright", "calm", "clever", "bold", "gentle", "honest", "lucky", "merry", "nimble",
    "quiet", "rare", "silent", "sunny", "swift", "wise", "zealous",
)  # fmt: skip
_NOUNS = (
    "ant", "bass", "crane", "deer", "eel", "fox", "gull", "hare", "ibis", "jay", "koi",
    "lynx", "mole", "newt", "owl", "panda",
)  # fmt: skip


def _generated_run_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randint(100, 999)}"


# ----------------------------------------------------------------------------------------
# Experiments


@endpoint("GET", "experiments/get-by-name", operation="experiment")
async def get_experiment_by_name(call: Call) -> dict[str, Any]:
    name = call.required_text("experiment_name")
    async with call.db.read() as session:
        experiment = await tracking_service.require_experiment(
            session, name=name, field="experiment_name"
        )
    return {"experiment": experiment_json(experiment)}


@endpoint("GET", "experiments/get", operation="experiment")
async def get_experiment(call: Call) -> dict[str, Any]:
    experiment_id = _experiment_id(call)
    async with call.db.read() as session:
        experiment = await tracking_service.require_experiment_by_id(
            session, experiment_id=experiment_id, field="experiment_id"
        )
    return {"experiment": experiment_json(experiment)}


@endpoint("POST", "experiments/create", operation="create_experiment")
async def create_experiment(call: Call) -> dict[str, Any]:
    name = call.required_text("name")
    # artifact_location is not taken: every experiment's files go through this server.
    tags = dict(_pairs(call, "tags"))
    async with call.db.unit_of_work() as session:
        experiment = await tracking_service.create_experiment(
            session, name=name, tags=tags, actor=call.principal.actor
        )
    return {"experiment_id": str(experiment.id)}


@endpoint("POST", "experiments/search", operation="experiments")
async def search_experiments(call: Call) -> dict[str, Any]:
    first = _max_results(call, SEARCH_EXPERIMENTS_DEFAULT, SEARCH_EXPERIMENTS_LIMIT)
    clauses = parse_experiment_filter(call.text("filter"), field="filter")
    order = parse_experiment_order_by(call.texts("order_by"), field="order_by")
    offset = _read_offset_token(call.text("page_token"))
    async with call.db.read() as session:
        found, more = await tracking_reads.search_experiments(
            session,
            clauses=clauses,
            order=order,
            view=_view(call, "view_type"),
            offset=offset,
            first=first,
        )
    answer: dict[str, Any] = {"experiments": [experiment_json(e) for e in found]}
    if more:
        answer["next_page_token"] = _offset_token(offset + len(found))
    return answer


@endpoint("POST", "experiments/delete", operation="delete_experiment")
async def delete_experiment(call: Call) -> dict[str, Any]:
    experiment_id = _experiment_id(call)
    async with call.db.unit_of_work() as session:
        await lifecycle.delete_experiment(
            session, experiment_id=experiment_id, actor=call.principal.actor
        )
    return {}


@endpoint("POST", "experiments/restore", operation="restore_experiment")
async def restore_experiment(call: Call) -> dict[str, Any]:
    experiment_id = _experiment_id(call)
    async with call.db.unit_of_work() as session:
        await lifecycle.restore_experiment(
            session, experiment_id=experiment_id, actor=call.principal.actor
        )
    return {}


@endpoint("POST", "experiments/update", operation="update_experiment")
async def update_experiment(call: Call) -> dict[str, Any]:
    experiment_id = _experiment_id(call)
    new_name = call.text("new_name")
    async with call.db.unit_of_work() as session:
        if new_name is not None:
            await lifecycle.rename_experiment(
                session, experiment_id=experiment_id, name=new_name, actor=call.principal.actor
            )
        else:
            await tracking_service.require_experiment_by_id(
                session, experiment_id=experiment_id, field="experiment_id"
            )
    return {}


@endpoint("POST", "experiments/set-experiment-tag", operation="update_experiment")
async def set_experiment_tag(call: Call) -> dict[str, Any]:
    experiment_id = _experiment_id(call)
    key = call.required_text("key")
    value = call.text("value", default="") or ""
    async with call.db.unit_of_work() as session:
        await lifecycle.set_experiment_tags(
            session, experiment_id=experiment_id, tags={key: value}, actor=call.principal.actor
        )
    return {}


@endpoint("POST", "experiments/delete-experiment-tag", operation="update_experiment")
async def delete_experiment_tag(call: Call) -> dict[str, Any]:
    experiment_id = _experiment_id(call)
    key = call.required_text("key")
    async with call.db.unit_of_work() as session:
        await lifecycle.delete_experiment_tag(
            session, experiment_id=experiment_id, key=key, actor=call.principal.actor
        )
    return {}


# ----------------------------------------------------------------------------------------
# Runs


@endpoint("POST", "runs/create", operation="start_run")
async def create_run(call: Call) -> dict[str, Any]:
    experiment_id = _experiment_id(call, required=False)
    tags = dict(_pairs(call, "tags"))
    name = call.text("run_name") or tags.get(RUN_NAME_TAG) or _generated_run_name()
    tags[RUN_NAME_TAG] = name
    user_id = call.text("user_id") or tags.get(USER_TAG)
    async with call.db.unit_of_work() as session:
        run = await tracking_service.start_run(
            session,
            experiment_id=experiment_id,
            name=name,
            tags=tags,
            start_time=_time(call, "start_time"),
            user_id=user_id,
            actor=call.principal.actor,
        )
    return await _run_answer(call, run.id)


@endpoint("GET", "runs/get", operation="run")
async def get_run(call: Call) -> dict[str, Any]:
    return await _run_answer(call, call.run_id())


@endpoint("POST", "runs/update", operation="update_run")
async def update_run(call: Call) -> dict[str, Any]:
    run_id = call.run_id()
    status_text = call.text("status")
    run_name = call.text("run_name")
    end_time = _time(call, "end_time")
    status: RunStatus | None = None
    if status_text:
        try:
            status = RunStatus(status_text)
        except ValueError:
            raise invalid(
                f"Invalid value {status_text!r} for parameter 'status': "
                "RUNNING, FINISHED, FAILED or KILLED"
            ) from None
    actor = call.principal.actor
    async with call.db.unit_of_work() as session:
        run = await tracking_service.require_run(session, run_id=run_id)
        if run_name:
            run = await lifecycle.rename_run(session, run_id=run_id, name=run_name, actor=actor)
            await tracking_service.set_run_tags(
                session, run_id=run_id, tags={RUN_NAME_TAG: run_name}, actor=actor
            )
        if status == RunStatus.RUNNING:
            run = await lifecycle.resume_run(session, run_id=run_id, actor=actor)
        elif status is not None:
            # A run ended again with the status it ended with (set_terminated after
            # end_run) keeps its first end time, as a retry would.
            same = run.status == status
            run = await tracking_service.end_run(
                session,
                run_id=run_id,
                status=status,
                end_time=None if same else end_time,
                actor=actor,
            )
    return {"run_info": run_info_json(run)}


@endpoint("POST", "runs/delete", operation="delete_run")
async def delete_run(call: Call) -> dict[str, Any]:
    run_id = call.run_id()
    async with call.db.unit_of_work() as session:
        await lifecycle.delete_run(session, run_id=run_id, actor=call.principal.actor)
    return {}


@endpoint("POST", "runs/restore", operation="restore_run")
async def restore_run(call: Call) -> dict[str, Any]:
    run_id = call.run_id()
    async with call.db.unit_of_work() as session:
        await lifecycle.restore_run(session, run_id=run_id, actor=call.principal.actor)
    return {}


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


def _metric_point(item: Any, at: str) -> tuple[str, float, int, int]:
    """(key, value, step, timestamp) of one metric of a log-batch."""
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
    key, value, step, timestamp = _metric_point(call.fields, "metric")
    async with call.db.unit_of_work() as session:
        await tracking_metrics.log_metrics(
            session,
            run_id=run_id,
            points=[tracking_metrics.MetricPoint(key, value, step, timestamp)],
            actor=call.principal.actor,
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
    params = _pairs(call, "params")
    tags = _pairs(call, "tags")
    _check_batch(len(raw_metrics), len(params), len(tags))
    # Points of one key become one series: the bulk, columnar ingestion path.
    columns: dict[str, tuple[list[float], list[int], list[int]]] = defaultdict(lambda: ([], [], []))
    for i, item in enumerate(raw_metrics):
        key, value, step, timestamp = _metric_point(item, f"metrics[{i}]")
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


@endpoint("POST", "runs/search", operation="search_runs")
async def search_runs(call: Call) -> dict[str, Any]:
    experiment_ids = _experiment_ids(call)
    first = _max_results(call, SEARCH_RUNS_DEFAULT, SEARCH_RUNS_LIMIT)
    search = tracking_reads.parse_search(
        filter=call.text("filter"),
        order_by=call.texts("order_by"),
        view=_view(call, "run_view_type"),
        filter_field="filter",
        order_field="order_by",
    )
    if not experiment_ids:
        return {"runs": []}
    token = call.text("page_token") or None
    async with call.db.read() as session:
        try:
            page = await tracking_reads.search_runs_matching(
                session,
                search=search,
                experiment_ids=experiment_ids,
                first=first,
                after=token,
                after_field="page_token",
            )
        except ValidationError as error:
            if error.field in ("after", "page_token"):
                raise invalid("Invalid page token: it was not given out by this server") from None
            raise
        answer: dict[str, Any] = {"runs": await runs_json(session, page.items)}
    if page.has_next and page.end_cursor:
        answer["next_page_token"] = page.end_cursor
    return answer


@endpoint("GET", "metrics/get-history", operation="run")
async def get_metric_history(call: Call) -> dict[str, Any]:
    run_id = call.run_id()
    key = call.required_text("metric_key")
    first = _max_results(call, HISTORY_PAGE_DEFAULT, HISTORY_PAGE_LIMIT)
    token = call.text("page_token") or None
    async with call.db.read() as session:
        await tracking_service.require_run(session, run_id=run_id)
        try:
            page = await tracking_reads.metric_history(
                session, run_id=run_id, key=key, first=first, after=token
            )
        except ValidationError:
            raise invalid("Invalid page token: it was not given out by this server") from None
    answer: dict[str, Any] = {
        "metrics": [
            {
                "key": p.key,
                "value": double(float("nan") if p.is_nan else p.value),
                "timestamp": p.timestamp,
                "step": p.step,
            }
            for p in page.items
        ]
    }
    if page.has_next and page.end_cursor:
        answer["next_page_token"] = page.end_cursor
    return answer
