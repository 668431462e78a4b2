"""MLflow 3's logged models on the MLflow face: create (PENDING), finalize, get, search,
tags, params, delete, and runs/outputs (which run produced which model, at which step).
Every rule is in app.tracking.logged_models; this module translates."""

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from app.errors import ConflictError
from app.mlflow.uris import logged_model_artifact_uri
from app.mlflow.wire import Call, double, endpoint, invalid, millis
from app.tracking import logged_model_reads as reads
from app.tracking import logged_models as service
from app.tracking.logged_model_models import LoggedModel, LoggedModelStatus

READ = "logged_models.read"
WRITE = "logged_models.write"

# MLflow's LoggedModelStatus names and ours.
STATUS_NAMES = {
    LoggedModelStatus.PENDING: "LOGGED_MODEL_PENDING",
    LoggedModelStatus.READY: "LOGGED_MODEL_READY",
    LoggedModelStatus.FAILED: "LOGGED_MODEL_UPLOAD_FAILED",
}
_STATUSES = {name: status for status, name in STATUS_NAMES.items()}
# proto-JSON also allows an enum by number.
_STATUS_NUMBERS = {
    1: LoggedModelStatus.PENDING,
    2: LoggedModelStatus.READY,
    3: LoggedModelStatus.FAILED,
}
DEFAULT_MAX_RESULTS = 100


def _pairs(call: Call, name: str) -> dict[str, str]:
    """A repeated {key, value} field as a dict (the last value of a repeated key wins)."""
    out: dict[str, str] = {}
    for i, item in enumerate(call.objects(name)):
        key, value = item.get("key"), item.get("value", "")
        if not isinstance(key, str) or not key:
            raise invalid(f"Missing value for required parameter '{name}[{i}].key'")
        if value is None:
            value = ""
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise invalid(f"Invalid value for parameter '{name}[{i}].value': a string")
        out[key] = str(value)
    return out


def _experiment_id(text: str, name: str = "experiment_id") -> int:
    try:
        value = int(text)
    except ValueError:
        raise invalid(f"Invalid value {text!r} for parameter '{name}': an experiment id") from None
    if value < 0 or value > 2**31 - 1:
        raise invalid(f"Invalid value {text!r} for parameter '{name}': an experiment id")
    return value


def _model_id(call: Call) -> str:
    return service.check_model_id("model_id", str(call.path_params["model_id"]))


def _status(value: Any) -> LoggedModelStatus:
    if isinstance(value, int) and not isinstance(value, bool) and value in _STATUS_NUMBERS:
        return _STATUS_NUMBERS[value]
    if isinstance(value, str) and value in _STATUSES:
        return _STATUSES[value]
    raise invalid(
        f"Invalid value {value!r} for parameter 'status': "
        "LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED"
    )


def model_json(model: LoggedModel, details: reads.Details) -> dict[str, Any]:
    """A LoggedModel message in proto-JSON."""
    info: dict[str, Any] = {
        "model_id": model.id,
        "experiment_id": str(model.experiment_id),
        "name": model.name,
        "creation_timestamp_ms": millis(model.created_at),
        "last_updated_timestamp_ms": millis(model.updated_at),
        "artifact_uri": logged_model_artifact_uri(model.experiment_id, model.id),
        "status": STATUS_NAMES[model.status],
        "tags": [{"key": k, "value": v} for k, v in details.tags.items()],
        "registrations": [],
    }
    if model.source_run_id is not None:
        info["source_run_id"] = model.source_run_id
    if model.model_type is not None:
        info["model_type"] = model.model_type
    if model.status_message is not None:
        info["status_message"] = model.status_message
    return {
        "info": info,
        "data": {
            "params": [{"key": k, "value": v} for k, v in details.params.items()],
            "metrics": [
                {
                    "key": m.key,
                    "value": double(m.value),
                    "timestamp": m.timestamp,
                    "step": m.step,
                    "run_id": m.run_id,
                    "model_id": model.id,
                }
                for m in details.metrics
            ],
        },
    }


async def _answer(call: Call, models: Sequence[LoggedModel]) -> list[dict[str, Any]]:
    async with call.db.read() as session:
        found = await reads.details(session, model_ids=[m.id for m in models])
    return [model_json(m, found[m.id]) for m in models]


async def _one(call: Call, model: LoggedModel) -> dict[str, Any]:
    return {"model": (await _answer(call, [model]))[0]}


@endpoint("POST", "logged-models", operation=WRITE)
async def create_logged_model(call: Call) -> dict[str, Any]:
    experiment_id = _experiment_id(call.required_text("experiment_id"))
    async with call.db.unit_of_work() as session:
        model = await service.create_logged_model(
            session,
            experiment_id=experiment_id,
            name=call.text("name"),
            source_run_id=call.text("source_run_id") or None,
            model_type=call.text("model_type") or None,
            params=_pairs(call, "params"),
            tags=_pairs(call, "tags"),
            actor=call.principal.actor,
        )
    return await _one(call, model)


@endpoint("GET", "logged-models/{model_id}", operation=READ)
async def get_logged_model(call: Call) -> dict[str, Any]:
    model_id = _model_id(call)
    async with call.db.read() as session:
        model = await service.get_logged_model(
            session, model_id=model_id, allow_deleted=call.boolean("allow_deleted")
        )
    return await _one(call, model)


@endpoint("PATCH", "logged-models/{model_id}", operation=WRITE)
async def finalize_logged_model(call: Call) -> dict[str, Any]:
    model_id = _model_id(call)
    status = _status(call.fields.get("status"))
    async with call.db.unit_of_work() as session:
        model = await service.finalize_logged_model(
            session, model_id=model_id, status=status, actor=call.principal.actor
        )
    return await _one(call, model)


@endpoint("DELETE", "logged-models/{model_id}", operation=WRITE)
async def delete_logged_model(call: Call) -> dict[str, Any]:
    model_id = _model_id(call)
    async with call.db.unit_of_work() as session:
        await service.delete_logged_model(session, model_id=model_id, actor=call.principal.actor)
    return {}


@endpoint("PATCH", "logged-models/{model_id}/tags", operation=WRITE)
async def set_logged_model_tags(call: Call) -> dict[str, Any]:
    model_id = _model_id(call)
    async with call.db.unit_of_work() as session:
        model = await service.set_logged_model_tags(
            session, model_id=model_id, tags=_pairs(call, "tags"), actor=call.principal.actor
        )
    return await _one(call, model)


@endpoint("DELETE", "logged-models/{model_id}/tags/{tag_key:artifact_path}", operation=WRITE)
async def delete_logged_model_tag(call: Call) -> dict[str, Any]:
    model_id = _model_id(call)
    async with call.db.unit_of_work() as session:
        await service.delete_logged_model_tag(
            session,
            model_id=model_id,
            key=str(call.path_params["tag_key"]),
            actor=call.principal.actor,
        )
    return {}


@endpoint("POST", "logged-models/{model_id}/params", operation=WRITE)
async def log_logged_model_params(call: Call) -> dict[str, Any]:
    model_id = _model_id(call)
    try:
        async with call.db.unit_of_work() as session:
            await service.log_logged_model_params(
                session,
                model_id=model_id,
                params=_pairs(call, "params"),
                actor=call.principal.actor,
            )
    except ConflictError as error:
        # MLflow answers a changed param as a bad value, as runs/log-parameter does here.
        raise invalid(error.message) from None
    return {}


@endpoint("POST", "runs/outputs", operation=WRITE)
async def log_outputs(call: Call) -> dict[str, Any]:
    run_id = call.run_id()
    outputs: list[tuple[str, int]] = []
    for i, item in enumerate(call.objects("models")):
        model_id = item.get("model_id")
        if not isinstance(model_id, str) or not model_id:
            raise invalid(f"Missing value for required parameter 'models[{i}].model_id'")
        step = item.get("step", 0)
        if isinstance(step, str) and step.strip().lstrip("-").isdigit():
            step = int(step)
        if not isinstance(step, int) or isinstance(step, bool):
            raise invalid(f"Invalid value for parameter 'models[{i}].step': an integer")
        outputs.append((model_id, step))
    async with call.db.unit_of_work() as session:
        await service.log_outputs(
            session, run_id=run_id, outputs=outputs, actor=call.principal.actor
        )
    return {}


def _offset(token: str | None) -> int:
    """MLflow's page token: base64 of {"offset": N}."""
    if not token:
        return 0
    try:
        offset = json.loads(base64.b64decode(token, validate=True))["offset"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise invalid(f"Invalid page token {token!r}") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise invalid(f"Invalid page token {token!r}")
    return offset


def _token(offset: int) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def _orders(call: Call) -> list[reads.Order]:
    orders = []
    for i, item in enumerate(call.objects("order_by")):
        name = item.get("field_name")
        if not isinstance(name, str) or not name:
            raise invalid(f"Missing value for required parameter 'order_by[{i}].field_name'")
        if item.get("dataset_name") or item.get("dataset_digest"):
            raise invalid("Ordering by a metric of one dataset is not supported")
        ascending = item.get("ascending", True)
        if not isinstance(ascending, bool):
            raise invalid(f"Invalid value for parameter 'order_by[{i}].ascending': a boolean")
        orders.append(reads.Order(field=name, ascending=ascending))
    return orders


@endpoint("POST", "logged-models/search", operation=READ)
async def search_logged_models(call: Call) -> dict[str, Any]:
    experiment_ids = [_experiment_id(e, "experiment_ids") for e in call.texts("experiment_ids")]
    if call.objects("datasets"):
        raise invalid("Filtering logged model metrics by dataset is not supported")
    limit = call.integer("max_results", default=DEFAULT_MAX_RESULTS) or DEFAULT_MAX_RESULTS
    offset = _offset(call.text("page_token"))
    async with call.db.read() as session:
        models, more = await reads.search_logged_models(
            session,
            experiment_ids=experiment_ids,
            filter=call.text("filter"),
            order_by=_orders(call),
            offset=offset,
            limit=limit,
        )
    answer: dict[str, Any] = {"models": await _answer(call, models)}
    if more:
        answer["next_page_token"] = _token(offset + len(models))
    return answer
