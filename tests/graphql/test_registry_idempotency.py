"""Idempotency keys: a retried call returns the first answer and changes nothing."""

import asyncio
from collections import Counter

from sqlalchemy import func, select

from app.auth.roles import Role
from app.events.models import Event
from app.main import create_app
from app.registry.models import ModelVersion
from tests.conftest import asgi_client, make_token
from tests.factories import make_run, make_version

REGISTER = """
mutation($key: String, $source: String) {
  registerModelVersion(input: {model: "m", source: $source, idempotencyKey: $key}) {
    __typename
    ... on RegisterModelVersionSuccess { modelVersion { version } }
    ... on Conflict { field expected actual }
  }
}
"""
TRANSITION = """
mutation($key: String, $stage: Stage!) {
  transitionModelVersion(input: {model: "m", version: 1, stage: $stage, idempotencyKey: $key}) {
    __typename
    ... on TransitionModelVersionSuccess {
      modelVersion { version } transitions { fromStage toStage }
    }
  }
}
"""
PROMOTE = """
mutation($key: String) {
  promoteBestRun(input: {experiment: "exp", metric: "acc", model: "m", stage: PRODUCTION,
                         idempotencyKey: $key}) {
    __typename
    ... on PromoteBestRunSuccess { created modelVersion { version } transitions { toStage } }
  }
}
"""
ROLLBACK = """
mutation($key: String) {
  rollbackModel(input: {model: "m", idempotencyKey: $key}) {
    __typename ... on RollbackModelSuccess { modelVersion { version } }
  }
}
"""


async def state(db) -> tuple[int, Counter]:
    async with db.read() as s:
        versions = (await s.execute(select(func.count()).select_from(ModelVersion))).scalar_one()
        events = Counter((await s.execute(select(Event.type))).scalars())
    return versions, events


async def test_a_retried_register_returns_the_first_version_and_adds_nothing(db, gql):
    first = await gql(REGISTER, key="ci-run-42", source="s3://a")
    after_first = await state(db)
    retry = await gql(REGISTER, key="ci-run-42", source="s3://a")
    assert (
        retry
        == first
        == {
            "registerModelVersion": {
                "__typename": "RegisterModelVersionSuccess",
                "modelVersion": {"version": 1},
            }
        }
    )
    assert await state(db) == after_first
    assert after_first[1]["VERSION_REGISTERED"] == 1


async def test_the_same_key_with_another_request_is_a_conflict(db, gql):
    await gql(REGISTER, key="k", source="s3://a")
    before = await state(db)
    data = await gql(REGISTER, key="k", source="s3://b")
    assert data["registerModelVersion"]["__typename"] == "Conflict"
    assert data["registerModelVersion"]["field"] == "idempotencyKey"
    assert await state(db) == before


async def test_a_retried_transition_gets_its_first_answer_not_a_refusal(db, gql):
    await make_version(db, model="m", stage="STAGING")
    first = await gql(TRANSITION, key="deploy-7", stage="PRODUCTION")
    before = await state(db)
    retry = await gql(TRANSITION, key="deploy-7", stage="PRODUCTION")
    assert retry == first
    assert first["transitionModelVersion"]["transitions"] == [
        {"fromStage": "STAGING", "toStage": "PRODUCTION"}
    ]
    assert await state(db) == before
    # without the key the same call is (rightly) refused: the version is already there
    again = await gql(TRANSITION, stage="PRODUCTION")
    assert again["transitionModelVersion"]["__typename"] == "InvalidTransition"


async def test_a_retried_promotion_and_rollback_fire_no_second_event(db, gql):
    await make_version(db, model="m", stage="PRODUCTION")
    await make_run(db, experiment="exp", metrics={"acc": 0.9})
    first = await gql(PROMOTE, key="p1")
    before = await state(db)
    assert await gql(PROMOTE, key="p1") == first
    assert first["promoteBestRun"]["created"] is True
    assert await state(db) == before

    rolled = await gql(ROLLBACK, key="r1")
    before = await state(db)
    assert await gql(ROLLBACK, key="r1") == rolled
    assert rolled["rollbackModel"]["modelVersion"] == {"version": 1}
    assert await state(db) == before


async def test_ten_racing_retries_of_one_register_make_one_version(db, settings, admin_secret):
    apps = [create_app(settings), create_app(settings)]
    async with apps[0].router.lifespan_context(apps[0]), apps[1].router.lifespan_context(apps[1]):
        clients = [asgi_client(a, admin_secret) for a in apps]
        responses = await asyncio.gather(
            *(
                clients[i % 2].post(
                    "/graphql",
                    json={"query": REGISTER, "variables": {"key": "same", "source": "s3://a"}},
                )
                for i in range(10)
            )
        )
        for c in clients:
            await c.aclose()
    answers = [r.json()["data"]["registerModelVersion"] for r in responses]
    # every answer is the first version (a racer may be told to retry, never a second version)
    assert {a["__typename"] for a in answers} <= {"RegisterModelVersionSuccess", "Conflict"}
    assert {a["modelVersion"]["version"] for a in answers if "modelVersion" in a} == {1}
    versions, events = await state(db)
    assert versions == 1 and events["VERSION_REGISTERED"] == 1


async def test_a_key_belongs_to_its_token_so_another_cannot_block_a_release(app, gql, database_url):
    # given a WRITER that used the key a DEPLOYER's release will use (a guessable CI id)
    await make_version(db=app.state.db, model="m", stage="STAGING")
    writer = await make_token(database_url, "trainer", Role.WRITER)
    async with asgi_client(app, writer) as client:
        body = {"query": REGISTER, "variables": {"key": "prod-42", "source": "s3://x"}}
        taken = (await client.post("/graphql", json=body)).json()["data"]
    assert taken["registerModelVersion"]["__typename"] == "RegisterModelVersionSuccess"

    # when the release runs with that key, then it is not a Conflict: keys are per token
    released = await gql(TRANSITION, key="prod-42", stage="PRODUCTION")
    assert released["transitionModelVersion"]["__typename"] == "TransitionModelVersionSuccess"
    # and a retry of the release with it is still recognised as the same request
    assert await gql(TRANSITION, key="prod-42", stage="PRODUCTION") == released
