"""Subscribers share loads of one event, and one subscriber leaving never breaks another."""

import asyncio

from app.graphql.context import Context


async def test_a_cancelled_subscriber_does_not_cancel_a_shared_load(app):
    # given two WebSocket contexts loading the same key through the shared loader
    started, release = asyncio.Event(), asyncio.Event()
    calls = []

    async def fetch(session, keys):
        calls.append(list(keys))
        started.set()
        await release.wait()
        return {k: f"value-{k}" for k in keys}

    def ws_context() -> Context:
        state = app.state
        return Context(db=state.db, settings=state.settings, bus=state.bus, cache_loaders=False)

    leaving = asyncio.create_task(ws_context().load_shared("probe", fetch, 1))
    staying = asyncio.create_task(ws_context().load_shared("probe", fetch, 1))
    await started.wait()

    # when one of them disconnects mid-load
    leaving.cancel()
    release.set()

    # then the other still gets its value, from the one shared query
    assert await staying == "value-1"
    assert calls == [[1]]
    assert leaving.cancelled()
