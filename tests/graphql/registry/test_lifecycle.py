"""Registering versions and moving them through the lifecycle over HTTP, with the outbox
rows each change writes and the nothing-changed guarantee of every refusal."""

import itertools
import json

import pytest
from sqlalchemy import select

from app.db import Database
from app.events.models import Event
from app.registry.models import StageTransition
from app.registry.stages import Stage
from app.tracking import metrics as tracking_metrics
from tests.factories import make_run, make_version
from tests.integrity import last_seq, snapshot

ERROR_FIELDS = """
  ... on Error { message code }
  ... on NotFound { field value }
  ... on InvalidInput { field limit }
  ... on Conflict { field }
"""
INVALID_TRANSITION = "... on InvalidTransition { fromStage toStage allowedMoves }"
NO_ROLLBACK_TARGET = "... on NoRollbackTarget { field }"

MOVES = "transitions { fromStage toStage actor reason modelVersion { version stage } }"

REGISTER = f"""
mutation Register($input: RegisterModelVersionInput!) {{
  registerModelVersion(input: $input) {{
    __typename
    ... on RegisterModelVersionSuccess {{
      modelVersion {{
        version stage source description tags {{ key value }}
        model {{ name }}
        run {{ id }}
      }}
    }}
    {ERROR_FIELDS}
  }}
}}
"""

TRANSITION = f"""
mutation Transition($input: TransitionModelVersionInput!) {{
  transitionModelVersion(input: $input) {{
    __typename
    ... on TransitionModelVersionSuccess {{ modelVersion {{ version stage }} {MOVES} }}
    {ERROR_FIELDS}
    {INVALID_TRANSITION}
  }}
}}
"""

PROMOTE = f"""
mutation Promote($input: PromoteBestRunInput!) {{
  promoteBestRun(input: $input) {{
    __typename
    ... on PromoteBestRunSuccess {{
      run {{ id }}
      created
      modelVersion {{ version stage source run {{ id }} }}
      {MOVES}
    }}
    {ERROR_FIELDS}
    {INVALID_TRANSITION}
  }}
}}
"""

ROLLBACK = f"""
mutation Rollback($input: RollbackModelInput!) {{
  rollbackModel(input: $input) {{
    __typename
    ... on RollbackModelSuccess {{ modelVersion {{ version stage }} {MOVES} }}
    {ERROR_FIELDS}
    {NO_ROLLBACK_TARGET}
  }}
}}
"""

STAGES = """
query Stages($name: String!) {
  model(name: $name) {
    productionVersion { version }
    versions { nodes { version stage } }
  }
}
"""

VERSION_TRANSITIONS = """
query VersionTransitions($model: String!, $version: Int!) {
  modelVersion(model: $model, version: $version) {
    transitions { fromStage toStage actor reason }
  }
}
"""

ANONYMOUS = "test-admin"  # the token the gql fixture sends
DEV, STAGING, PROD, ARCHIVED = "DEVELOPMENT", "STAGING", "PRODUCTION", "ARCHIVED"
ALLOWED = {
    DEV: {STAGING, ARCHIVED},
    STAGING: {PROD, DEV, ARCHIVED},
    PROD: {ARCHIVED},
    ARCHIVED: {STAGING},
}


# ---------------------------------------------------------------- helpers


async def events_since(db: Database, seq: int) -> list[tuple]:
    """Outbox rows written after `seq`: (type, model, version, from, to, actor)."""
    async with db.read() as s:
        rows = (await s.execute(select(Event).where(Event.seq > seq).order_by(Event.seq))).scalars()
        return [(e.type, e.model, e.version, e.from_stage, e.to_stage, e.actor) for e in rows.all()]


async def stages_of(gql, model: str) -> dict[int, str]:
    data = await gql(STAGES, name=model)
    return {v["version"]: v["stage"] for v in data["model"]["versions"]["nodes"]}


def moves(payload: dict) -> list[tuple]:
    return [
        (t["modelVersion"]["version"], t["fromStage"], t["toStage"]) for t in payload["transitions"]
    ]


def assert_no_traceback(payload: dict) -> None:
    assert "Traceback" not in json.dumps(payload)


# ---------------------------------------------------------------- registerModelVersion


async def test_register_creates_the_model_and_version_1_in_development(gql, db):
    # given
    seq = await last_seq(db)

    # when
    data = await gql(
        REGISTER,
        input={
            "model": "churn",
            "source": "s3://bucket/churn/1",
            "description": "baseline",
            "tags": [{"key": "framework", "value": "sklearn"}],
        },
    )

    # then
    payload = data["registerModelVersion"]
    assert payload["__typename"] == "RegisterModelVersionSuccess"
    assert payload["modelVersion"] == {
        "version": 1,
        "stage": DEV,
        "source": "s3://bucket/churn/1",
        "description": "baseline",
        "tags": [{"key": "framework", "value": "sklearn"}],
        "model": {"name": "churn"},
        "run": None,
    }
    assert await events_since(db, seq) == [
        ("MODEL_CREATED", "churn", None, None, None, ANONYMOUS),
        ("VERSION_REGISTERED", "churn", 1, None, DEV, ANONYMOUS),
    ]


async def test_register_numbers_the_next_version_without_recreating_the_model(gql, db):
    # given
    await make_version(db, model="churn")
    await make_version(db, model="churn", stage=Stage.ARCHIVED)
    seq = await last_seq(db)

    # when
    data = await gql(REGISTER, input={"model": "churn"})

    # then
    assert data["registerModelVersion"]["modelVersion"]["version"] == 3
    assert data["registerModelVersion"]["modelVersion"]["stage"] == DEV
    assert await events_since(db, seq) == [("VERSION_REGISTERED", "churn", 3, None, DEV, ANONYMOUS)]


async def test_register_from_a_run_links_the_run(gql, db):
    # given
    run = await make_run(db, metrics={"acc": 0.9})

    # when
    data = await gql(REGISTER, input={"model": "m", "runId": run.id})

    # then
    assert data["registerModelVersion"]["modelVersion"]["run"] == {"id": run.id}


async def test_register_with_unknown_run_is_not_found_and_creates_nothing(gql, db):
    # given
    before = await snapshot(db)
    missing = "0" * 32

    # when
    data = await gql(REGISTER, input={"model": "fresh", "runId": missing})

    # then
    payload = data["registerModelVersion"]
    assert payload["__typename"] == "NotFound"
    assert payload["code"] == "NOT_FOUND"
    assert payload["field"] == "runId"
    assert payload["value"] == missing
    assert await snapshot(db) == before
    assert (await gql(STAGES, name="fresh"))["model"] is None


async def test_register_with_unknown_run_for_an_existing_model_adds_no_version(gql, db):
    await make_version(db, model="m")
    before = await snapshot(db)

    data = await gql(REGISTER, input={"model": "m", "runId": "f" * 32})

    assert data["registerModelVersion"]["__typename"] == "NotFound"
    assert await snapshot(db) == before


async def test_register_model_name_over_256_is_invalid_input_naming_model(gql, db):
    # given
    before = await snapshot(db)

    # when
    data = await gql(REGISTER, input={"model": "m" * 257})

    # then
    payload = data["registerModelVersion"]
    assert payload["__typename"] == "InvalidInput"
    assert payload["code"] == "INVALID_INPUT"
    assert payload["field"] == "model"
    assert payload["limit"] == 256
    assert await snapshot(db) == before
    assert_no_traceback(payload)


async def test_register_model_name_of_exactly_256_is_accepted(gql, db):
    data = await gql(REGISTER, input={"model": "m" * 256})

    assert data["registerModelVersion"]["modelVersion"]["model"] == {"name": "m" * 256}


@pytest.mark.parametrize("name", ["", "   "])
async def test_register_empty_model_name_is_invalid_input(gql, db, name):
    before = await snapshot(db)

    data = await gql(REGISTER, input={"model": name})

    assert data["registerModelVersion"]["__typename"] == "InvalidInput"
    assert data["registerModelVersion"]["field"] == "model"
    assert await snapshot(db) == before


async def test_register_with_a_tag_key_twice_is_invalid_input(gql, db):
    before = await snapshot(db)

    data = await gql(
        REGISTER,
        input={"model": "m", "tags": [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]},
    )

    assert data["registerModelVersion"]["__typename"] == "InvalidInput"
    assert await snapshot(db) == before


# ---------------------------------------------------------------- transitionModelVersion

STAGE_PAIRS = list(itertools.product([DEV, STAGING, PROD, ARCHIVED], repeat=2))


@pytest.mark.parametrize(
    ("from_stage", "to_stage"), [p for p in STAGE_PAIRS if p[1] in ALLOWED[p[0]]]
)
async def test_allowed_move_changes_the_stage_and_records_it(gql, db, from_stage, to_stage):
    # given
    version = await make_version(db, model="m", stage=Stage(from_stage))
    seq = await last_seq(db)

    # when
    data = await gql(
        TRANSITION,
        input={"model": "m", "version": version, "stage": to_stage, "reason": "ticket-42"},
    )

    # then
    payload = data["transitionModelVersion"]
    assert payload["__typename"] == "TransitionModelVersionSuccess"
    assert payload["modelVersion"] == {"version": version, "stage": to_stage}
    assert payload["transitions"] == [
        {
            "fromStage": from_stage,
            "toStage": to_stage,
            "actor": ANONYMOUS,
            "reason": "ticket-42",
            "modelVersion": {"version": version, "stage": to_stage},
        }
    ]
    assert await stages_of(gql, "m") == {version: to_stage}
    trail = await gql(VERSION_TRANSITIONS, model="m", version=version)
    assert trail["modelVersion"]["transitions"][0] == {
        "fromStage": from_stage,
        "toStage": to_stage,
        "actor": ANONYMOUS,
        "reason": "ticket-42",
    }
    assert await events_since(db, seq) == [
        ("STAGE_CHANGED", "m", version, from_stage, to_stage, ANONYMOUS)
    ]


@pytest.mark.parametrize(
    ("from_stage", "to_stage"), [p for p in STAGE_PAIRS if p[1] not in ALLOWED[p[0]]]
)
async def test_refused_move_is_invalid_transition_and_changes_nothing(
    gql, db, from_stage, to_stage
):
    # given
    version = await make_version(db, model="m", stage=Stage(from_stage))
    before = await snapshot(db)

    # when
    data = await gql(TRANSITION, input={"model": "m", "version": version, "stage": to_stage})

    # then
    payload = data["transitionModelVersion"]
    assert payload["__typename"] == "InvalidTransition"
    assert payload["code"] == "INVALID_TRANSITION"
    assert payload["fromStage"] == from_stage
    assert payload["toStage"] == to_stage
    assert set(payload["allowedMoves"]) == ALLOWED[from_stage]
    assert len(payload["allowedMoves"]) == len(ALLOWED[from_stage])
    assert payload["message"]
    assert await snapshot(db) == before


async def test_move_to_production_archives_the_version_it_replaces(gql, db):
    # given
    await make_version(db, model="m", stage=Stage.PRODUCTION)
    await make_version(db, model="m", stage=Stage.STAGING)
    seq = await last_seq(db)

    # when
    data = await gql(TRANSITION, input={"model": "m", "version": 2, "stage": PROD})

    # then
    payload = data["transitionModelVersion"]
    assert payload["__typename"] == "TransitionModelVersionSuccess"
    assert payload["modelVersion"] == {"version": 2, "stage": PROD}
    assert moves(payload) == [(1, PROD, ARCHIVED), (2, STAGING, PROD)]
    assert {t["actor"] for t in payload["transitions"]} == {ANONYMOUS}
    assert await stages_of(gql, "m") == {1: ARCHIVED, 2: PROD}
    assert (await gql(STAGES, name="m"))["model"]["productionVersion"] == {"version": 2}
    assert await events_since(db, seq) == [
        ("STAGE_CHANGED", "m", 1, PROD, ARCHIVED, ANONYMOUS),
        ("STAGE_CHANGED", "m", 2, STAGING, PROD, ANONYMOUS),
    ]


async def test_production_of_one_model_does_not_archive_another_models(gql, db):
    await make_version(db, model="a", stage=Stage.PRODUCTION)
    await make_version(db, model="b", stage=Stage.STAGING)

    data = await gql(TRANSITION, input={"model": "b", "version": 1, "stage": PROD})

    assert moves(data["transitionModelVersion"]) == [(1, STAGING, PROD)]
    assert await stages_of(gql, "a") == {1: PROD}


@pytest.mark.parametrize(
    ("model", "version", "field"),
    [("unknown", 1, "model"), ("m", 7, "version")],
)
async def test_transition_of_unknown_model_or_version_is_not_found(gql, db, model, version, field):
    # given
    await make_version(db, model="m")
    before = await snapshot(db)

    # when
    data = await gql(TRANSITION, input={"model": model, "version": version, "stage": STAGING})

    # then
    payload = data["transitionModelVersion"]
    assert payload["__typename"] == "NotFound"
    assert payload["code"] == "NOT_FOUND"
    assert payload["field"] == field
    assert await snapshot(db) == before


async def test_transition_reason_over_the_limit_is_invalid_input(gql, db):
    await make_version(db, model="m")
    before = await snapshot(db)

    data = await gql(
        TRANSITION, input={"model": "m", "version": 1, "stage": STAGING, "reason": "r" * 1001}
    )

    payload = data["transitionModelVersion"]
    assert payload["__typename"] == "InvalidInput"
    assert payload["field"] == "reason"
    assert payload["limit"] == 1000
    assert await snapshot(db) == before


async def test_transition_to_an_unknown_stage_is_a_request_error(gql, db):
    await make_version(db, model="m")
    before = await snapshot(db)

    body = await gql.raw(TRANSITION, input={"model": "m", "version": 1, "stage": "RETIRED"})

    assert body.get("errors")
    assert_no_traceback(body)
    assert await snapshot(db) == before


# ---------------------------------------------------------------- promoteBestRun


async def runs_with(db: Database, metric: str, values: list[float], **kwargs) -> list[str]:
    return [
        (await make_run(db, experiment="exp", metrics={metric: v}, **kwargs)).id for v in values
    ]


async def test_promote_registers_the_best_run_and_moves_it_to_staging(gql, db):
    # given
    ids = await runs_with(db, "acc", [0.7, 0.93, 0.8])
    await make_run(db, experiment="exp", metrics={"loss": 0.1})
    seq = await last_seq(db)

    # when
    data = await gql(PROMOTE, input={"experiment": "exp", "metric": "acc", "model": "churn"})

    # then
    payload = data["promoteBestRun"]
    assert payload["__typename"] == "PromoteBestRunSuccess"
    assert payload["run"] == {"id": ids[1]}
    assert payload["created"] is True
    assert payload["modelVersion"]["version"] == 1
    assert payload["modelVersion"]["stage"] == STAGING
    assert payload["modelVersion"]["run"] == {"id": ids[1]}
    assert moves(payload) == [(1, DEV, STAGING)]
    assert payload["transitions"][0]["actor"] == ANONYMOUS
    assert await events_since(db, seq) == [
        ("MODEL_CREATED", "churn", None, None, None, ANONYMOUS),
        ("VERSION_REGISTERED", "churn", 1, None, DEV, ANONYMOUS),
        ("STAGE_CHANGED", "churn", 1, DEV, STAGING, ANONYMOUS),
    ]


async def test_promote_minimize_picks_the_lowest_value(gql, db):
    ids = await runs_with(db, "loss", [0.3, 0.1, 0.2])

    data = await gql(
        PROMOTE,
        input={"experiment": "exp", "metric": "loss", "goal": "MINIMIZE", "model": "m"},
    )

    assert data["promoteBestRun"]["run"] == {"id": ids[1]}


async def test_promote_aggregate_uses_the_metric_history(gql, db):
    # given: run a ends at 0.5 but reached 0.99; run b ends at 0.9
    a = await make_run(db, experiment="exp", metrics={"acc": 0.99})
    b = await make_run(db, experiment="exp", metrics={"acc": 0.9})
    async with db.unit_of_work() as session:
        await tracking_metrics.log_metrics(
            session, actor="test", run_id=a.id, points=[tracking_metrics.MetricPoint("acc", 0.5, 1)]
        )

    # when
    last = await gql(PROMOTE, input={"experiment": "exp", "metric": "acc", "model": "last"})
    best = await gql(
        PROMOTE,
        input={"experiment": "exp", "metric": "acc", "aggregate": "MAX", "model": "max"},
    )

    # then
    assert last["promoteBestRun"]["run"] == {"id": b.id}
    assert best["promoteBestRun"]["run"] == {"id": a.id}


async def test_promote_filter_restricts_the_candidates(gql, db):
    await make_run(db, experiment="exp", metrics={"acc": 0.99}, params={"arch": "cnn"})
    mlp = await make_run(db, experiment="exp", metrics={"acc": 0.8}, params={"arch": "mlp"})

    data = await gql(
        PROMOTE,
        input={
            "experiment": "exp",
            "metric": "acc",
            "model": "m",
            "filter": {"params": [{"key": "arch", "value": "mlp"}]},
        },
    )

    assert data["promoteBestRun"]["run"] == {"id": mlp.id}


async def test_promote_twice_is_idempotent(gql, db):
    # given
    await runs_with(db, "acc", [0.7, 0.9])
    variables = {"experiment": "exp", "metric": "acc", "model": "m"}
    first = await gql(PROMOTE, input=variables)
    seq = await last_seq(db)
    before = await snapshot(db)

    # when
    second = await gql(PROMOTE, input=variables)

    # then
    payload = second["promoteBestRun"]
    assert payload["__typename"] == "PromoteBestRunSuccess"
    assert payload["created"] is False
    assert payload["modelVersion"] == first["promoteBestRun"]["modelVersion"]
    assert payload["transitions"] == []
    assert await events_since(db, seq) == []
    assert await snapshot(db) == before


async def test_promote_to_production_twice_is_idempotent(gql, db):
    await runs_with(db, "acc", [0.9])
    variables = {"experiment": "exp", "metric": "acc", "model": "m", "stage": PROD}
    await gql(PROMOTE, input=variables)
    before = await snapshot(db)

    data = await gql(PROMOTE, input=variables)

    assert data["promoteBestRun"]["created"] is False
    assert data["promoteBestRun"]["transitions"] == []
    assert await snapshot(db) == before


async def test_promote_reuses_the_version_already_registered_from_the_run(gql, db):
    # given
    [run_id] = await runs_with(db, "acc", [0.9])
    await make_version(db, model="m")
    await make_version(db, model="m", run_id=run_id)
    seq = await last_seq(db)

    # when
    data = await gql(PROMOTE, input={"experiment": "exp", "metric": "acc", "model": "m"})

    # then
    payload = data["promoteBestRun"]
    assert payload["created"] is False
    assert payload["modelVersion"]["version"] == 2
    assert payload["modelVersion"]["stage"] == STAGING
    assert moves(payload) == [(2, DEV, STAGING)]
    assert await stages_of(gql, "m") == {1: DEV, 2: STAGING}
    assert await events_since(db, seq) == [("STAGE_CHANGED", "m", 2, DEV, STAGING, ANONYMOUS)]


async def test_promote_does_not_move_a_production_version_back_to_staging(gql, db):
    [run_id] = await runs_with(db, "acc", [0.9])
    await make_version(db, model="m", run_id=run_id, stage=Stage.PRODUCTION)
    before = await snapshot(db)

    data = await gql(PROMOTE, input={"experiment": "exp", "metric": "acc", "model": "m"})

    payload = data["promoteBestRun"]
    assert payload["created"] is False
    assert payload["modelVersion"]["version"] == 1
    assert payload["modelVersion"]["stage"] == PROD
    assert payload["modelVersion"]["run"] == {"id": run_id}
    assert payload["transitions"] == []
    assert await snapshot(db) == before


async def test_promote_to_production_walks_the_lifecycle_and_archives_the_old_version(gql, db):
    # given
    await make_version(db, model="m", stage=Stage.PRODUCTION)
    ids = await runs_with(db, "acc", [0.8, 0.95])
    seq = await last_seq(db)

    # when
    data = await gql(
        PROMOTE,
        input={
            "experiment": "exp",
            "metric": "acc",
            "model": "m",
            "stage": PROD,
            "reason": "nightly",
        },
    )

    # then
    payload = data["promoteBestRun"]
    assert payload["__typename"] == "PromoteBestRunSuccess"
    assert payload["run"] == {"id": ids[1]}
    assert payload["created"] is True
    assert payload["modelVersion"]["version"] == 2
    assert payload["modelVersion"]["stage"] == PROD
    assert moves(payload) == [(2, DEV, STAGING), (1, PROD, ARCHIVED), (2, STAGING, PROD)]
    assert await stages_of(gql, "m") == {1: ARCHIVED, 2: PROD}
    assert await events_since(db, seq) == [
        ("VERSION_REGISTERED", "m", 2, None, DEV, ANONYMOUS),
        ("STAGE_CHANGED", "m", 2, DEV, STAGING, ANONYMOUS),
        ("STAGE_CHANGED", "m", 1, PROD, ARCHIVED, ANONYMOUS),
        ("STAGE_CHANGED", "m", 2, STAGING, PROD, ANONYMOUS),
    ]


async def test_promote_brings_an_archived_version_of_the_best_run_back(gql, db):
    [run_id] = await runs_with(db, "acc", [0.9])
    await make_version(db, model="m", run_id=run_id, stage=Stage.ARCHIVED)

    data = await gql(
        PROMOTE, input={"experiment": "exp", "metric": "acc", "model": "m", "stage": PROD}
    )

    payload = data["promoteBestRun"]
    assert payload["created"] is False
    assert moves(payload) == [(1, ARCHIVED, STAGING), (1, STAGING, PROD)]


async def test_promote_with_no_run_having_the_metric_is_not_found(gql, db):
    # given
    await runs_with(db, "loss", [0.1, 0.2])
    before = await snapshot(db)

    # when
    data = await gql(PROMOTE, input={"experiment": "exp", "metric": "acc", "model": "m"})

    # then
    payload = data["promoteBestRun"]
    assert payload["__typename"] == "NotFound"
    assert payload["code"] == "NOT_FOUND"
    assert payload["field"] == "metric"
    assert await snapshot(db) == before
    assert (await gql(STAGES, name="m"))["model"] is None


async def test_promote_with_no_run_matching_the_filter_is_not_found(gql, db):
    await runs_with(db, "acc", [0.9], params={"arch": "cnn"})
    before = await snapshot(db)

    data = await gql(
        PROMOTE,
        input={
            "experiment": "exp",
            "metric": "acc",
            "model": "m",
            "filter": {"params": [{"key": "arch", "value": "mlp"}]},
        },
    )

    assert data["promoteBestRun"]["__typename"] == "NotFound"
    assert await snapshot(db) == before


async def test_promote_in_an_unknown_experiment_is_not_found(gql, db):
    before = await snapshot(db)

    data = await gql(PROMOTE, input={"experiment": "nope", "metric": "acc", "model": "m"})

    assert data["promoteBestRun"]["__typename"] == "NotFound"
    assert await snapshot(db) == before


@pytest.mark.parametrize("stage", [DEV, ARCHIVED])
async def test_promote_to_development_or_archived_is_invalid_input(gql, db, stage):
    # given
    await runs_with(db, "acc", [0.9])
    before = await snapshot(db)

    # when
    data = await gql(
        PROMOTE, input={"experiment": "exp", "metric": "acc", "model": "m", "stage": stage}
    )

    # then
    payload = data["promoteBestRun"]
    assert payload["__typename"] == "InvalidInput"
    assert payload["code"] == "INVALID_INPUT"
    assert payload["field"] == "stage"
    assert await snapshot(db) == before


async def test_promote_model_name_over_256_is_invalid_input(gql, db):
    await runs_with(db, "acc", [0.9])
    before = await snapshot(db)

    data = await gql(PROMOTE, input={"experiment": "exp", "metric": "acc", "model": "m" * 257})

    payload = data["promoteBestRun"]
    assert payload["__typename"] == "InvalidInput"
    assert payload["field"] == "model"
    assert payload["limit"] == 256
    assert await snapshot(db) == before


# ---------------------------------------------------------------- rollbackModel


async def test_rollback_restores_the_previous_production_version(gql, db):
    # given: v1 was in production, v2 replaced it
    await make_version(db, model="m", stage=Stage.PRODUCTION)
    await make_version(db, model="m", stage=Stage.PRODUCTION)
    seq = await last_seq(db)

    # when
    data = await gql(ROLLBACK, input={"model": "m", "reason": "latency regression"})

    # then
    payload = data["rollbackModel"]
    assert payload["__typename"] == "RollbackModelSuccess"
    assert payload["modelVersion"] == {"version": 1, "stage": PROD}
    assert moves(payload) == [(2, PROD, ARCHIVED), (1, ARCHIVED, PROD)]
    assert {t["reason"] for t in payload["transitions"]} == {"latency regression"}
    assert {t["actor"] for t in payload["transitions"]} == {ANONYMOUS}
    assert await stages_of(gql, "m") == {1: PROD, 2: ARCHIVED}
    *moved, rolled_back = await events_since(db, seq)
    assert moved == [
        ("STAGE_CHANGED", "m", 2, PROD, ARCHIVED, ANONYMOUS),
        ("STAGE_CHANGED", "m", 1, ARCHIVED, PROD, ANONYMOUS),
    ]
    kind, model, version, _, _, actor = rolled_back
    assert (kind, model, version, actor) == ("MODEL_ROLLED_BACK", "m", 1, ANONYMOUS)


async def test_rollback_returns_to_the_version_just_before_the_current_one(gql, db):
    # given: v1, then v2, then v3 in production
    for _ in range(3):
        await make_version(db, model="m", stage=Stage.PRODUCTION)

    # when
    data = await gql(ROLLBACK, input={"model": "m"})

    # then
    assert data["rollbackModel"]["modelVersion"] == {"version": 2, "stage": PROD}
    assert await stages_of(gql, "m") == {1: ARCHIVED, 2: PROD, 3: ARCHIVED}


async def test_rollback_with_nothing_in_production_is_no_rollback_target(gql, db):
    # given: v1 was in production once and is archived now
    await make_version(db, model="m", stage=Stage.PRODUCTION)
    await make_version(db, model="m", stage=Stage.STAGING)
    await gql(TRANSITION, input={"model": "m", "version": 1, "stage": ARCHIVED})
    before = await snapshot(db)

    # when
    data = await gql(ROLLBACK, input={"model": "m"})

    # then
    payload = data["rollbackModel"]
    assert payload["__typename"] == "NoRollbackTarget"
    assert payload["code"] == "NO_ROLLBACK_TARGET"
    assert payload["field"] == "model"
    assert await snapshot(db) == before


async def test_rollback_of_the_first_production_version_is_no_rollback_target(gql, db):
    # given
    await make_version(db, model="m", stage=Stage.PRODUCTION)
    await make_version(db, model="m", stage=Stage.STAGING)
    before = await snapshot(db)

    # when
    data = await gql(ROLLBACK, input={"model": "m"})

    # then
    assert data["rollbackModel"]["__typename"] == "NoRollbackTarget"
    assert await snapshot(db) == before


async def test_rollback_of_an_unknown_model_is_not_found(gql, db):
    await make_version(db, model="m", stage=Stage.PRODUCTION)
    before = await snapshot(db)

    data = await gql(ROLLBACK, input={"model": "unknown"})

    assert data["rollbackModel"]["__typename"] == "NotFound"
    assert data["rollbackModel"]["field"] == "model"
    assert await snapshot(db) == before


ROLLBACK_POLICY = f"""
mutation Rollback($input: RollbackModelInput!) {{
  rollbackModel(input: $input) {{
    __typename
    ... on RollbackModelSuccess {{
      modelVersion {{ version stage }}
      bypassedConditions {{ condition actual required }}
      transitions {{ toStage rollback policy {{ requiredChecks bypassed unmet {{ condition }} }} }}
    }}
    {ERROR_FIELDS}
  }}
}}
"""
PRODUCTION_POLICY = """
mutation {
  setPromotionPolicy(input: {model: "m", stage: PRODUCTION, requiredChecks: ["tests"],
                             metricRules: [{metric: "acc", op: GTE, value: 0.9}],
                             mustBeatProduction: {metric: "acc", goal: MAXIMIZE}}) { __typename }
}
"""
STAGE_EVENTS_POLICY = """
{ events(model: "m", types: [STAGE_CHANGED]) {
    nodes { version { version } toStage policy { bypassed unmet { condition actual required } } } } }
"""


async def production_versions(db: Database, *accuracies: float) -> None:
    """Versions of "m" made from runs with these accuracies, each put in PRODUCTION in turn."""
    for acc in accuracies:
        run = await make_run(db, experiment="exp", metrics={"acc": acc})
        await make_version(db, model="m", run_id=run.id, stage=Stage.PRODUCTION)


async def test_rollback_to_a_version_the_policy_refuses_goes_ahead_and_says_what_it_bypassed(
    gql, db
):
    # given: v1 (acc 0.85, no checks) was in production, v2 (acc 0.95) replaced it, and
    # then the model got a PRODUCTION policy v1 does not meet in any way
    await production_versions(db, 0.85, 0.95)
    assert (await gql(PRODUCTION_POLICY))["setPromotionPolicy"]["__typename"] == (
        "SetPromotionPolicySuccess"
    )

    # when
    data = await gql(ROLLBACK_POLICY, input={"model": "m"})

    # then the rollback happened: it is the emergency exit, allowed regardless
    payload = data["rollbackModel"]
    assert payload["__typename"] == "RollbackModelSuccess"
    assert payload["modelVersion"] == {"version": 1, "stage": PROD}
    bypassed = [
        {"condition": "check tests", "actual": "not reported", "required": "PASSED"},
        {"condition": "metric acc", "actual": "0.85", "required": "GTE 0.9"},
    ]
    assert payload["bypassedConditions"][:2] == bypassed
    assert [c["condition"] for c in payload["bypassedConditions"]][2:] == [
        "beats production version 2 on acc"
    ]
    archive, restore = payload["transitions"]
    assert archive["policy"] is None
    assert restore["rollback"] is True
    assert restore["policy"]["requiredChecks"] == ["tests"]
    assert restore["policy"]["bypassed"] is True
    assert [u["condition"] for u in restore["policy"]["unmet"]] == [
        c["condition"] for c in payload["bypassedConditions"]
    ]
    # and the audit row and the STAGE_CHANGED event say so
    async with db.read() as s:
        row = (
            await s.execute(select(StageTransition).order_by(StageTransition.id.desc()).limit(1))
        ).scalar_one()
    assert row.rollback
    assert row.policy["bypassed"] is True
    assert row.policy["unmet"][:2] == bypassed
    event = (await gql(STAGE_EVENTS_POLICY))["events"]["nodes"][-1]
    assert (event["version"]["version"], event["toStage"]) == (1, PROD)
    assert event["policy"]["bypassed"] is True
    assert event["policy"]["unmet"] == payload["bypassedConditions"]


async def test_rollback_to_a_version_meeting_the_policy_bypasses_nothing(gql, db):
    # given: both versions meet the policy's thresholds and passed the check
    await production_versions(db, 0.97, 0.95)
    await gql(PRODUCTION_POLICY)
    for version in (1, 2):
        await gql(
            'mutation($v: Int!) { recordValidation(input: {model: "m", version: $v, '
            'check: "tests", status: PASSED}) { __typename } }',
            v=version,
        )

    # when
    data = await gql(ROLLBACK_POLICY, input={"model": "m"})

    # then
    payload = data["rollbackModel"]
    assert payload["modelVersion"] == {"version": 1, "stage": PROD}
    assert payload["bypassedConditions"] == []
    restore = payload["transitions"][-1]
    assert restore["policy"] == {"requiredChecks": ["tests"], "bypassed": False, "unmet": []}
