"""Compare-and-set: a pipeline that expected another state gets Conflict, not an overwrite."""

import asyncio
from collections import Counter

from sqlalchemy import func, select

from app.events.models import Event
from app.main import create_app
from app.registry.models import ModelVersion
from tests.conftest import asgi_client
from tests.factories import make_run, make_version

TRANSITION = """
mutation($v: Int!, $stage: Stage!, $prod: Int, $seen: Stage) {
  transitionModelVersion(input: {model: "m", version: $v, stage: $stage,
                                 expectedProductionVersion: $prod, expectedStage: $seen}) {
    __typename
    ... on TransitionModelVersionSuccess { modelVersion { version stage } }
    ... on Conflict { field expected actual message }
  }
}
"""
PROMOTE = """
mutation($prod: Int) {
  promoteBestRun(input: {experiment: "exp", metric: "acc", model: "m", stage: PRODUCTION,
                         expectedProductionVersion: $prod}) {
    __typename
    ... on PromoteBestRunSuccess { modelVersion { version } }
    ... on Conflict { field expected actual }
  }
}
"""


async def counts(db) -> tuple[int, int]:
    async with db.read() as s:
        versions = (await s.execute(select(func.count()).select_from(ModelVersion))).scalar_one()
        events = (await s.execute(select(func.count()).select_from(Event))).scalar_one()
    return versions, events


async def test_a_stale_production_expectation_is_a_conflict_with_the_current_state(db, gql):
    # given version 1 in PRODUCTION and version 2 in STAGING
    await make_version(db, model="m", stage="PRODUCTION")
    await make_version(db, model="m", stage="STAGING")
    before = await counts(db)

    # when a pipeline that believed nothing was in production promotes version 2
    data = await gql(TRANSITION, v=2, stage="PRODUCTION", prod=0)

    # then it is told what is there now, and nothing changed
    assert data["transitionModelVersion"]["__typename"] == "Conflict"
    assert data["transitionModelVersion"]["field"] == "expectedProductionVersion"
    assert (
        data["transitionModelVersion"]["expected"],
        data["transitionModelVersion"]["actual"],
    ) == ("0", "1")
    assert await counts(db) == before

    # and with the right expectation it goes through
    data = await gql(TRANSITION, v=2, stage="PRODUCTION", prod=1)
    assert data["transitionModelVersion"]["modelVersion"] == {"version": 2, "stage": "PRODUCTION"}


async def test_a_stale_stage_expectation_is_a_conflict(db, gql):
    await make_version(db, model="m", stage="STAGING")
    data = await gql(TRANSITION, v=1, stage="ARCHIVED", seen="DEVELOPMENT")
    conflict = data["transitionModelVersion"]
    assert conflict["__typename"] == "Conflict"
    assert conflict["field"] == "expectedStage"
    assert (conflict["expected"], conflict["actual"]) == ("DEVELOPMENT", "STAGING")


async def test_promote_best_run_checks_the_expectation_before_registering(db, gql):
    await make_run(db, experiment="exp", metrics={"acc": 0.9})
    await make_version(db, model="m", stage="PRODUCTION")
    before = await counts(db)

    stale = (await gql(PROMOTE, prod=0))["promoteBestRun"]
    assert stale == {
        "__typename": "Conflict",
        "field": "expectedProductionVersion",
        "expected": "0",
        "actual": "1",
    }
    assert await counts(db) == before
    fresh = (await gql(PROMOTE, prod=1))["promoteBestRun"]
    assert fresh == {"__typename": "PromoteBestRunSuccess", "modelVersion": {"version": 2}}


async def test_twenty_racing_promotions_with_one_expectation_have_one_winner(
    db, settings, admin_secret
):
    # given versions 2..21 in STAGING and version 1 in PRODUCTION
    await make_version(db, model="m", stage="PRODUCTION")
    for _ in range(20):
        await make_version(db, model="m", stage="STAGING")
    async with db.read() as s:
        events_before = (await s.execute(select(func.count()).select_from(Event))).scalar_one()

    # when twenty pipelines, on two servers, each promote their version expecting version 1
    apps = [create_app(settings), create_app(settings)]
    async with apps[0].router.lifespan_context(apps[0]), apps[1].router.lifespan_context(apps[1]):
        clients = [asgi_client(a, admin_secret) for a in apps]
        responses = await asyncio.gather(
            *(
                clients[v % 2].post(
                    "/graphql",
                    json={
                        "query": TRANSITION,
                        "variables": {"v": v, "stage": "PRODUCTION", "prod": 1},
                    },
                )
                for v in range(2, 22)
            )
        )
        for c in clients:
            await c.aclose()

    # then exactly one wins, nineteen get Conflict, one version is in PRODUCTION
    assert {r.status_code for r in responses} == {200}
    kinds = Counter(r.json()["data"]["transitionModelVersion"]["__typename"] for r in responses)
    assert kinds == {"TransitionModelVersionSuccess": 1, "Conflict": 19}
    async with db.read() as s:
        stages = Counter((await s.execute(select(ModelVersion.stage))).scalars())
        events_after = (await s.execute(select(func.count()).select_from(Event))).scalar_one()
    assert stages == {"PRODUCTION": 1, "ARCHIVED": 1, "STAGING": 19}
    # and the events are exactly the winner's: version 1 archived, the winner promoted
    assert events_after - events_before == 2
