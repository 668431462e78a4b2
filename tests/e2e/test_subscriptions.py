"""Deployment watchers over real WebSockets against a real server: every lifecycle change,
in commit order, exactly once, across reconnects and (on PostgreSQL) across replicas."""

import asyncio
import json

import pytest
import websockets

from app.client import StreamClosed
from tests.conftest import ADMIN
from tests.e2e.conftest import auth_headers, gql
from tests.e2e.ws import Subscriber

WATCH = """
subscription($model: String, $after: String) {
  lifecycleEvents(model: $model, after: $after) {
    cursor type model versionNumber fromStage toStage alias actor
    version { version stage }
  }
}
"""

EVENTS = """
query($model: String, $after: String) {
  events(model: $model, after: $after, first: 500) {
    nodes { cursor type versionNumber fromStage toStage alias }
    pageInfo { endCursor }
  }
}
"""

REGISTER = 'mutation { registerModelVersion(input: {model: "m"}) { __typename } }'
MOVE = """
mutation($v: Int!, $stage: Stage!) {
  transitionModelVersion(input: {model: "m", version: $v, stage: $stage}) { __typename }
}
"""
ALIAS = """
mutation($v: Int!) {
  setModelAlias(input: {model: "m", alias: "champion", version: $v}) { __typename }
}
"""
UNALIAS = 'mutation { deleteModelAlias(input: {model: "m", alias: "champion"}) { __typename } }'
ROLLBACK = 'mutation { rollbackModel(input: {model: "m"}) { __typename } }'


def scenario(base: str) -> list[str]:
    """Register, move, promote (archiving the old), alias moves, a refused move, rollback."""
    results = [
        gql(base, REGISTER),
        gql(base, MOVE, v=1, stage="STAGING"),
        gql(base, MOVE, v=1, stage="PRODUCTION"),
        gql(base, REGISTER),
        gql(base, MOVE, v=2, stage="STAGING"),
        gql(base, ALIAS, v=1),
        gql(base, MOVE, v=2, stage="DEVELOPMENT"),
        gql(base, MOVE, v=2, stage="PRODUCTION"),  # refused: no event
        gql(base, MOVE, v=2, stage="STAGING"),
        gql(base, MOVE, v=2, stage="PRODUCTION"),  # archives version 1
        gql(base, ALIAS, v=2),
        gql(base, UNALIAS),
        gql(base, ROLLBACK),
    ]
    return [next(iter(r.values()))["__typename"] for r in results]


def committed(base: str, after: str | None = None) -> list[dict]:
    return gql(base, EVENTS, model="m", after=after)["events"]["nodes"]


def shape(event: dict) -> tuple:
    return (
        event["type"],
        event["versionNumber"],
        event["fromStage"],
        event["toStage"],
        event["alias"],
    )


async def test_a_watcher_sees_every_change_in_commit_order_exactly_once(start_server):
    server = start_server()
    gql(server.base, REGISTER)  # something to take a cursor from
    after = committed(server.base)[-1]["cursor"]

    async with Subscriber(server.ws, WATCH, {"model": "m", "after": after}) as watcher:
        outcomes = await asyncio.to_thread(scenario, server.base)
        expected = committed(server.base, after)
        received = [e["lifecycleEvents"] for e in await watcher.take(len(expected))]

    # the refused move (DEVELOPMENT -> PRODUCTION) committed nothing, so it has no event
    assert outcomes.count("InvalidTransition") == 1
    assert not [
        e for e in received if (e["fromStage"], e["toStage"]) == ("DEVELOPMENT", "PRODUCTION")
    ]
    assert [shape(e) for e in received] == [shape(e) for e in expected]
    assert [e["cursor"] for e in received] == [e["cursor"] for e in expected]
    types = [e["type"] for e in received]
    assert types.count("MODEL_ROLLED_BACK") == 1
    assert types.count("ALIAS_DELETED") == 1
    # the promotion of version 2 archived version 1 in the same transaction, archive first
    archive = received.index(next(e for e in received if e["toStage"] == "ARCHIVED"))
    assert received[archive]["versionNumber"] == 1
    assert received[archive + 1]["versionNumber"] == 2
    assert received[archive + 1]["toStage"] == "PRODUCTION"
    assert all(e["actor"] == ADMIN for e in received)
    assert received[-1]["version"] == {"version": 1, "stage": "PRODUCTION"}


async def test_a_watcher_that_reconnects_with_its_cursor_misses_nothing(start_server):
    server = start_server()
    gql(server.base, REGISTER)
    start = committed(server.base)[-1]["cursor"]

    # given a watcher that saw two changes and disconnected
    async with Subscriber(server.ws, WATCH, {"model": "m", "after": start}) as watcher:
        gql(server.base, MOVE, v=1, stage="STAGING")
        gql(server.base, ALIAS, v=1)
        seen = [e["lifecycleEvents"] for e in await watcher.take(2)]
    last = seen[-1]["cursor"]

    # when changes happen while it is away
    gql(server.base, MOVE, v=1, stage="PRODUCTION")
    gql(server.base, REGISTER)

    # then on reconnecting with its last cursor it gets exactly those, then live ones
    async with Subscriber(server.ws, WATCH, {"model": "m", "after": last}) as watcher:
        missed = [e["lifecycleEvents"] for e in await watcher.take(2)]
        gql(server.base, MOVE, v=2, stage="STAGING")
        live = (await watcher.next())["lifecycleEvents"]

    assert [(e["type"], e["versionNumber"], e["toStage"]) for e in missed] == [
        ("STAGE_CHANGED", 1, "PRODUCTION"),
        ("VERSION_REGISTERED", 2, "DEVELOPMENT"),
    ]
    assert (live["type"], live["versionNumber"], live["toStage"]) == ("STAGE_CHANGED", 2, "STAGING")
    cursors = [e["cursor"] for e in [*seen, *missed, live]]
    assert len(set(cursors)) == len(cursors)


async def test_without_after_a_watcher_starts_live(start_server):
    server = start_server()
    gql(server.base, REGISTER)  # history the live watcher must not replay

    async with Subscriber(server.ws, WATCH, {"model": "m"}) as watcher:
        # the subscription is live once it answers; poke until the first event arrives
        for attempt in range(50):
            gql(
                server.base,
                f'mutation {{ updateModel(input: {{name: "m", description: "{attempt}"}}) '
                "{ __typename } }",
            )
            try:
                event = (await asyncio.wait_for(watcher.next(), 0.5))["lifecycleEvents"]
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("no live event")
    assert event["type"] == "MODEL_UPDATED"


async def test_legacy_graphql_ws_protocol_delivers_the_same_stream(start_server):
    server = start_server()
    gql(server.base, REGISTER)
    after = committed(server.base)[-1]["cursor"]
    async with Subscriber(server.ws, WATCH, {"model": "m", "after": after}, legacy=True) as watcher:
        gql(server.base, MOVE, v=1, stage="STAGING")
        event = (await watcher.next())["lifecycleEvents"]
    assert (event["type"], event["toStage"]) == ("STAGE_CHANGED", "STAGING")


async def test_two_hundred_watchers_all_receive_a_promotion(start_server):
    server = start_server()
    gql(server.base, REGISTER)
    gql(server.base, MOVE, v=1, stage="STAGING")
    after = committed(server.base)[-1]["cursor"]
    watchers = [Subscriber(server.ws, WATCH, {"model": "m", "after": after}) for _ in range(200)]
    await asyncio.gather(*(w.open() for w in watchers))
    try:
        gql(server.base, MOVE, v=1, stage="PRODUCTION")
        events = await asyncio.gather(*(w.next() for w in watchers))
    finally:
        await asyncio.gather(*(w.close() for w in watchers))
    delivered = [e["lifecycleEvents"]["toStage"] for e in events]
    assert delivered.count("PRODUCTION") == 200


async def test_server_shutdown_ends_subscriptions_cleanly(start_server):
    server = start_server()
    gql(server.base, REGISTER)
    async with Subscriber(server.ws, WATCH, {"model": "m"}) as watcher:
        await asyncio.to_thread(server.stop)  # asserts no traceback in the server's output
        with pytest.raises(StreamClosed) as closed:
            await watcher.message()
    assert closed.value.close_code in (1000, 1001, 1012)


@pytest.mark.postgres
async def test_a_watcher_on_one_replica_sees_a_promotion_made_through_another(start_server):
    a, b = start_server(), start_server()
    gql(b.base, REGISTER)
    gql(b.base, MOVE, v=1, stage="STAGING")
    after = committed(a.base)[-1]["cursor"]

    async with Subscriber(a.ws, WATCH, {"model": "m", "after": after}) as watcher:
        gql(b.base, MOVE, v=1, stage="PRODUCTION")
        event = (await watcher.next())["lifecycleEvents"]

    assert (event["type"], event["versionNumber"], event["toStage"]) == (
        "STAGE_CHANGED",
        1,
        "PRODUCTION",
    )


RUN_METRICS = """
subscription($run: ID!) { runMetrics(runId: $run) { points { key value step } } }
"""
START = (
    'mutation { startRun(input: {experiment: "live"}) { ... on StartRunSuccess { run { id } } } }'
)
LOG = """
mutation($run: ID!, $step: Long!) {
  logMetrics(input: {runId: $run, points: [{key: "loss", value: 0.5, step: $step},
                                           {key: "acc", value: "NaN", step: $step}]}) { __typename }
}
"""
END_RUN = "mutation($run: ID!) { endRun(input: {runId: $run}) { __typename } }"


async def test_run_metrics_streams_points_as_logged_and_ends_with_the_run(start_server):
    server = start_server()
    run = gql(server.base, START)["startRun"]["run"]["id"]

    async with Subscriber(server.ws, RUN_METRICS, {"run": run}) as live:
        # the subscription is live once it answers; log until the first batch arrives
        for step in range(50):
            gql(server.base, LOG, run=run, step=step)
            try:
                first = (await asyncio.wait_for(live.next(), 0.5))["runMetrics"]["points"]
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("no live metrics")
        gql(server.base, LOG, run=run, step=1000)
        second = (await live.next())["runMetrics"]["points"]
        gql(server.base, END_RUN, run=run)
        end = await live.message()

    assert [p["key"] for p in first] == ["loss", "acc"]
    assert first[1]["value"] == "NaN"
    assert second == [
        {"key": "loss", "value": 0.5, "step": 1000},
        {"key": "acc", "value": "NaN", "step": 1000},
    ]
    assert end["type"] == "complete"


async def test_subscriptions_per_connection_are_capped(start_server):
    server = start_server(MODELGRAPH_MAX_SUBSCRIPTIONS_PER_CONNECTION="2")
    async with websockets.connect(server.ws, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": auth_headers()}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        for i in range(3):
            payload = {"query": WATCH, "variables": {"model": "m"}}
            await ws.send(json.dumps({"id": str(i), "type": "subscribe", "payload": payload}))
        refused = json.loads(await asyncio.wait_for(ws.recv(), 20))
    assert refused["id"] == "2"
    assert refused["type"] == "error"
    assert "limit" in refused["payload"][0]["message"].lower()
