"""Races between writers: two server instances on one database, requests fired together."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from app.events.models import Event
from app.main import create_app
from app.registry.models import ModelVersion
from tests.conftest import asgi_client
from tests.factories import make_run, make_version

TRANSITION = """
mutation($model: String!, $version: Int!, $stage: Stage!) {
  transitionModelVersion(input: {model: $model, version: $version, stage: $stage}) {
    __typename
    ... on TransitionModelVersionSuccess { modelVersion { version stage } }
    ... on Error { code message }
  }
}
"""

PROMOTE = """
mutation($stage: Stage!) {
  promoteBestRun(input: {experiment: "exp", metric: "accuracy", model: "m", stage: $stage}) {
    __typename
    ... on PromoteBestRunSuccess { created modelVersion { version stage } }
    ... on Error { code message }
  }
}
"""


@pytest.fixture
async def replicas(settings, admin_secret) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Two app instances, each with its own engines and pools, on the same database."""
    apps = [create_app(settings), create_app(settings)]
    async with apps[0].router.lifespan_context(apps[0]), apps[1].router.lifespan_context(apps[1]):
        clients = [asgi_client(a, admin_secret) for a in apps]
        yield clients
        for c in clients:
            await c.aclose()


async def fire(clients, query, variables_list):
    calls = [
        clients[i % len(clients)].post("/graphql", json={"query": query, "variables": v})
        for i, v in enumerate(variables_list)
    ]
    responses = await asyncio.gather(*calls)
    assert [r.status_code for r in responses] == [200] * len(responses)
    bodies = [r.json() for r in responses]
    assert all("errors" not in b for b in bodies), bodies
    return bodies


async def production_count(db) -> int:
    async with db.read() as s:
        stmt = select(func.count()).where(ModelVersion.stage == "PRODUCTION")
        return (await s.execute(stmt)).scalar_one()


async def test_two_concurrent_promotions_of_one_version_have_exactly_one_winner(db, replicas):
    # given a version in STAGING
    await make_version(db, model="m", stage=None)
    await fire(replicas, TRANSITION, [{"model": "m", "version": 1, "stage": "STAGING"}])

    # when two servers promote it to PRODUCTION at once
    bodies = await fire(
        replicas, TRANSITION, [{"model": "m", "version": 1, "stage": "PRODUCTION"}] * 2
    )

    # then exactly one wins; the other is told the move is no longer allowed
    kinds = Counter(b["data"]["transitionModelVersion"]["__typename"] for b in bodies)
    assert kinds == {"TransitionModelVersionSuccess": 1, "InvalidTransition": 1}
    assert await production_count(db) == 1
    async with db.read() as s:
        moves = (
            await s.execute(select(func.count()).where(Event.to_stage == "PRODUCTION"))
        ).scalar_one()
    assert moves == 1


async def test_concurrent_promotions_of_two_versions_leave_one_in_production(db, replicas):
    # given two STAGING versions
    for _ in range(2):
        await make_version(db, model="m", stage=None)
    await fire(
        replicas,
        TRANSITION,
        [{"model": "m", "version": v, "stage": "STAGING"} for v in (1, 2)],
    )

    # when both are promoted at once, on different servers
    bodies = await fire(
        replicas,
        TRANSITION,
        [{"model": "m", "version": v, "stage": "PRODUCTION"} for v in (1, 2)],
    )

    # then they serialise: both succeed, the later archives the earlier, one stays in PRODUCTION
    kinds = Counter(b["data"]["transitionModelVersion"]["__typename"] for b in bodies)
    assert kinds == {"TransitionModelVersionSuccess": 2}
    async with db.read() as s:
        stages = sorted((await s.execute(select(ModelVersion.stage))).scalars())
    assert stages == ["ARCHIVED", "PRODUCTION"]


async def test_ten_concurrent_promote_best_run_register_one_version(db, replicas):
    # given an experiment with a clear best run
    for accuracy in (0.7, 0.9, 0.8):
        await make_run(db, experiment="exp", metrics={"accuracy": accuracy})

    # when ten CI jobs promote the best run to PRODUCTION at once
    bodies = await fire(replicas, PROMOTE, [{"stage": "PRODUCTION"}] * 10)

    # then one version was registered and promoted; the other nine reused it
    results = [b["data"]["promoteBestRun"] for b in bodies]
    assert {r["__typename"] for r in results} == {"PromoteBestRunSuccess"}
    assert sum(r["created"] for r in results) == 1
    assert {(r["modelVersion"]["version"], r["modelVersion"]["stage"]) for r in results} == {
        (1, "PRODUCTION")
    }
    async with db.read() as s:
        assert (await s.execute(select(func.count()).select_from(ModelVersion))).scalar_one() == 1
        types = Counter((await s.execute(select(Event.type).where(Event.model == "m"))).scalars())
    assert types == {"MODEL_CREATED": 1, "VERSION_REGISTERED": 1, "STAGE_CHANGED": 2}
