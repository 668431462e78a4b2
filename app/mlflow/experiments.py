"""MLflow's experiment endpoints (get, get-by-name, create, search, delete, restore,
update, tags) over app.tracking. A face: it reads MLflow's fields, calls the services and
answers in MLflow's proto-JSON; every rule is in the domain."""

import base64
import binascii
import json
from typing import Any

from app.mlflow.answers import experiment_json
from app.mlflow.fields import read_experiment_id, read_max_results, read_pairs, read_view
from app.mlflow.wire import Call, endpoint, invalid
from app.tracking import lifecycle
from app.tracking import reads as tracking_reads
from app.tracking import service as tracking_service
from app.tracking.filters import parse_experiment_filter, parse_experiment_order_by

SEARCH_EXPERIMENTS_DEFAULT = 1000
SEARCH_EXPERIMENTS_LIMIT = 50_000


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
    experiment_id = read_experiment_id(call)
    async with call.db.read() as session:
        experiment = await tracking_service.require_experiment_by_id(
            session, experiment_id=experiment_id, field="experiment_id"
        )
    return {"experiment": experiment_json(experiment)}


@endpoint("POST", "experiments/create", operation="create_experiment")
async def create_experiment(call: Call) -> dict[str, Any]:
    name = call.required_text("name")
    # artifact_location is not taken: every experiment's files go through this server.
    tags = dict(read_pairs(call, "tags"))
    async with call.db.unit_of_work() as session:
        experiment = await tracking_service.create_experiment(
            session, name=name, tags=tags, actor=call.principal.actor
        )
    return {"experiment_id": str(experiment.id)}


@endpoint("POST", "experiments/search", operation="experiments")
async def search_experiments(call: Call) -> dict[str, Any]:
    first = read_max_results(call, SEARCH_EXPERIMENTS_DEFAULT, SEARCH_EXPERIMENTS_LIMIT)
    clauses = parse_experiment_filter(call.text("filter"), field="filter")
    order = parse_experiment_order_by(call.texts("order_by"), field="order_by")
    offset = _read_offset_token(call.text("page_token"))
    async with call.db.read() as session:
        found, more = await tracking_reads.search_experiments(
            session,
            clauses=clauses,
            order=order,
            view=read_view(call, "view_type"),
            offset=offset,
            first=first,
        )
    answer: dict[str, Any] = {"experiments": [experiment_json(e) for e in found]}
    if more:
        answer["next_page_token"] = _offset_token(offset + len(found))
    return answer


@endpoint("POST", "experiments/delete", operation="delete_experiment")
async def delete_experiment(call: Call) -> dict[str, Any]:
    experiment_id = read_experiment_id(call)
    async with call.db.unit_of_work() as session:
        await lifecycle.delete_experiment(
            session, experiment_id=experiment_id, actor=call.principal.actor
        )
    return {}


@endpoint("POST", "experiments/restore", operation="restore_experiment")
async def restore_experiment(call: Call) -> dict[str, Any]:
    experiment_id = read_experiment_id(call)
    async with call.db.unit_of_work() as session:
        await lifecycle.restore_experiment(
            session, experiment_id=experiment_id, actor=call.principal.actor
        )
    return {}


@endpoint("POST", "experiments/update", operation="update_experiment")
async def update_experiment(call: Call) -> dict[str, Any]:
    experiment_id = read_experiment_id(call)
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
    experiment_id = read_experiment_id(call)
    key = call.required_text("key")
    value = call.text("value", default="") or ""
    async with call.db.unit_of_work() as session:
        await lifecycle.set_experiment_tags(
            session, experiment_id=experiment_id, tags={key: value}, actor=call.principal.actor
        )
    return {}


@endpoint("POST", "experiments/delete-experiment-tag", operation="update_experiment")
async def delete_experiment_tag(call: Call) -> dict[str, Any]:
    experiment_id = read_experiment_id(call)
    key = call.required_text("key")
    async with call.db.unit_of_work() as session:
        await lifecycle.delete_experiment_tag(
            session, experiment_id=experiment_id, key=key, actor=call.principal.actor
        )
    return {}
