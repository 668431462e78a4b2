"""MLflow's run endpoints (create, get, update, delete, restore), run search and metric
history over app.tracking. A face: it reads MLflow's fields, calls the services and
answers in MLflow's proto-JSON; every rule is in the domain. Logging into a run is
app/mlflow/run_logging.py."""

import random
from datetime import UTC, datetime
from typing import Any

from app.errors import ValidationError
from app.mlflow.answers import RUN_NAME_TAG, run_info_json, runs_json
from app.mlflow.fields import read_experiment_id, read_max_results, read_pairs, read_view
from app.mlflow.wire import Call, double, endpoint, invalid
from app.tracking import lifecycle
from app.tracking import reads as tracking_reads
from app.tracking import service as tracking_service
from app.tracking.models import RunStatus

SEARCH_RUNS_DEFAULT = 1000
SEARCH_RUNS_LIMIT = 50_000
HISTORY_PAGE_DEFAULT = 25_000
HISTORY_PAGE_LIMIT = 25_000

USER_TAG = "mlflow.user"


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


def _time(call: Call, name: str) -> datetime | None:
    value = call.integer(name)
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        raise invalid(f"Invalid value {value} for parameter '{name}': epoch milliseconds") from None


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


async def _run_answer(call: Call, run_id: str) -> dict[str, Any]:
    async with call.db.read() as session:
        run = await tracking_service.require_run(session, run_id=run_id)
        return {"run": (await runs_json(session, [run]))[0]}


@endpoint("POST", "runs/create", operation="start_run")
async def create_run(call: Call) -> dict[str, Any]:
    experiment_id = read_experiment_id(call, required=False)
    tags = dict(read_pairs(call, "tags"))
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


@endpoint("POST", "runs/search", operation="search_runs")
async def search_runs(call: Call) -> dict[str, Any]:
    experiment_ids = _experiment_ids(call)
    first = read_max_results(call, SEARCH_RUNS_DEFAULT, SEARCH_RUNS_LIMIT)
    search = tracking_reads.parse_search(
        filter=call.text("filter"),
        order_by=call.texts("order_by"),
        view=read_view(call, "run_view_type"),
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
    first = read_max_results(call, HISTORY_PAGE_DEFAULT, HISTORY_PAGE_LIMIT)
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
