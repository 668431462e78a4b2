"""Shared subscription execution over real WebSockets against a real server: watchers of
the same query, variables and role share one execution per event (counted in /metrics);
any difference keeps their results apart; a reconnect with a cursor still misses nothing."""

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.auth.roles import Role
from tests.conftest import make_token
from tests.e2e.conftest import Server, gql
from tests.e2e.ws import TIMEOUT, Subscriber

WATCH = """
subscription($model: String, $after: String, $withVersion: Boolean!) {
  lifecycleEvents(model: $model, after: $after) {
    cursor type model versionNumber toStage actor
    version @include(if: $withVersion) { version stage }
  }
}
"""
EVENTS = """
query($after: String) { events(model: "m", after: $after, first: 500) { nodes { cursor } } }
"""
REGISTER = 'mutation { registerModelVersion(input: {model: "m"}) { __typename } }'
MOVE = """
mutation($v: Int!, $stage: Stage!) {
  transitionModelVersion(input: {model: "m", version: $v, stage: $stage}) { __typename }
}
"""


def executions(server: Server) -> dict[str, float]:
    text = httpx.get(f"{server.base}/metrics", timeout=TIMEOUT, trust_env=False).text
    counts = {"executed": 0.0, "shared": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "modelgraph_subscription_executions_total":
                counts[sample.labels["outcome"]] += sample.value
    return counts


def last_cursor(server: Server, after: str | None = None) -> str:
    return gql(server.base, EVENTS, after=after)["events"]["nodes"][-1]["cursor"]


async def test_watchers_share_an_execution_only_with_their_own_kind(start_server, database_url):
    # given five ADMIN watchers of one query, two READER watchers of it, and one ADMIN
    # watcher whose variables ask for one more field
    reader = await make_token(database_url, "reader-watcher", Role.READER)
    server = start_server()
    gql(server.base, REGISTER)
    after = last_cursor(server)
    plain = {"model": "m", "after": after, "withVersion": False}
    admins = [Subscriber(server.ws, WATCH, plain) for _ in range(5)]
    readers = [Subscriber(server.ws, WATCH, plain, token=reader) for _ in range(2)]
    richer = Subscriber(server.ws, WATCH, {**plain, "withVersion": True})
    everyone = [*admins, *readers, richer]
    await asyncio.gather(*(w.open() for w in everyone))
    before = executions(server)
    try:
        # when one promotion commits
        gql(server.base, MOVE, v=1, stage="STAGING")
        got = [(await w.next())["lifecycleEvents"] for w in everyone]
    finally:
        await asyncio.gather(*(w.close() for w in everyone))
    after_counts = executions(server)

    # then all eight got the event, each kind its own result
    assert {e["cursor"] for e in got} == {last_cursor(server)}
    assert all(e == got[0] for e in got[:7])
    assert "version" not in got[0]
    assert got[7]["version"] == {"version": 1, "stage": "STAGING"}
    # and it was executed once per kind (admins, readers, the richer query): 3, shared 5
    assert after_counts["executed"] - before["executed"] == 3
    assert after_counts["shared"] - before["shared"] == 5


async def test_a_watcher_back_with_its_cursor_gets_what_the_others_got(start_server):
    server = start_server()
    gql(server.base, REGISTER)
    start = last_cursor(server)
    variables = {"model": "m", "after": start, "withVersion": True}

    async with Subscriber(server.ws, WATCH, variables) as staying:
        # given a watcher that saw one change and left while another stayed
        async with Subscriber(server.ws, WATCH, variables) as leaving:
            gql(server.base, MOVE, v=1, stage="STAGING")
            seen = (await leaving.next())["lifecycleEvents"]
        first = (await staying.next())["lifecycleEvents"]

        # when two changes commit while it is away and it comes back with its cursor
        gql(server.base, MOVE, v=1, stage="PRODUCTION")
        gql(server.base, REGISTER)
        stayed = [e["lifecycleEvents"] for e in await staying.take(2)]
        back_with = {**variables, "after": seen["cursor"]}
        async with Subscriber(server.ws, WATCH, back_with) as back:
            missed = [e["lifecycleEvents"] for e in await back.take(2)]
            # and one more commits while both are live
            gql(server.base, MOVE, v=2, stage="STAGING")
            live_back = (await back.next())["lifecycleEvents"]
            live_stayed = (await staying.next())["lifecycleEvents"]

    # then it missed nothing, in order, and its results are the other watcher's
    assert seen["cursor"] == first["cursor"]
    assert [e["cursor"] for e in missed] == [e["cursor"] for e in stayed]
    assert [(e["type"], e["versionNumber"]) for e in missed] == [
        ("STAGE_CHANGED", 1),
        ("VERSION_REGISTERED", 2),
    ]
    assert live_back == live_stayed
    assert live_back["version"] == {"version": 2, "stage": "STAGING"}
