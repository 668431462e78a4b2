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
    assert versions == 1
    assert events["VERSION_REGISTERED"] == 1


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


FULL_TRANSITION = """
mutation($key: String, $stage: Stage!) {
  transitionModelVersion(input: {model: "m", version: 1, stage: $stage, idempotencyKey: $key}) {
    __typename
    ... on TransitionModelVersionSuccess {
      modelVersion {
        version stage description updatedAt tags { key value } aliases
        transitions { fromStage toStage }
        validations { check status }
      }
      transitions { fromStage toStage modelVersion { version stage transitions { toStage } } }
    }
  }
}
"""
LATER_EDITS = """
mutation {
  updateModelVersion(input: {model: "m", version: 1, description: "later",
                             setTags: [{key: "k", value: "later"}]}) { __typename }
  setModelAlias(input: {model: "m", alias: "champion", version: 1}) { __typename }
  recordValidation(input: {model: "m", version: 1, check: "tests", status: PASSED}) {
    __typename
  }
}
"""


async def test_a_replay_returns_exactly_the_first_answer_after_the_version_moved_on(db, gql):
    # given a keyed move to STAGING, then the version moved on to PRODUCTION and was edited
    await make_version(db, model="m")
    first = await gql(FULL_TRANSITION, key="ci-7", stage="STAGING")
    assert first["transitionModelVersion"]["modelVersion"]["stage"] == "STAGING"
    await gql(TRANSITION, stage="PRODUCTION")
    await gql(LATER_EDITS)
    before = await state(db)

    # when the first call is retried
    replay = await gql(FULL_TRANSITION, key="ci-7", stage="STAGING")

    # then it gets the first answer, nested selections included, and changes nothing
    assert replay == first
    version = replay["transitionModelVersion"]["modelVersion"]
    assert (version["stage"], version["description"], version["aliases"]) == ("STAGING", None, [])
    assert version["transitions"] == [{"fromStage": "DEVELOPMENT", "toStage": "STAGING"}]
    assert version["validations"] == []
    moved = replay["transitionModelVersion"]["transitions"][0]["modelVersion"]
    assert moved == {"version": 1, "stage": "STAGING", "transitions": [{"toStage": "STAGING"}]}
    assert await state(db) == before


FULL_PROMOTE = """
mutation($key: String) {
  promoteBestRun(input: {experiment: "exp", metric: "acc", model: "m", stage: STAGING,
                         idempotencyKey: $key}) {
    __typename
    ... on PromoteBestRunSuccess {
      created run { id status }
      modelVersion { version stage aliases transitions { toStage } }
      transitions { toStage modelVersion { stage } }
    }
  }
}
"""
ALIAS = """
mutation($key: String, $version: Int!) {
  setModelAlias(input: {model: "m", alias: "champion", version: $version, idempotencyKey: $key}) {
    __typename ... on SetModelAliasSuccess { alias modelVersion { version stage aliases } }
  }
}
"""


async def test_replayed_promotion_and_alias_answers_are_as_they_were_first_given(db, gql):
    # given a keyed promotion to STAGING and a keyed alias, then everything moved on
    await make_run(db, experiment="exp", metrics={"acc": 0.9})
    first_promote = await gql(FULL_PROMOTE, key="p-1")
    first_alias = await gql(ALIAS, key="a-1", version=1)
    assert first_alias["setModelAlias"]["modelVersion"]["aliases"] == ["champion"]
    await gql(TRANSITION, stage="PRODUCTION")
    await make_version(db, model="m")
    await gql(ALIAS, version=2)

    # when both are retried
    replay_promote = await gql(FULL_PROMOTE, key="p-1")
    replay_alias = await gql(ALIAS, key="a-1", version=1)

    # then each is the first answer
    assert replay_promote == first_promote
    assert replay_promote["promoteBestRun"]["modelVersion"]["stage"] == "STAGING"
    assert replay_promote["promoteBestRun"]["modelVersion"]["aliases"] == []
    assert replay_alias == first_alias
