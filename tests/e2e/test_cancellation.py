"""A client that cancels a mutation (graphql-transport-ws `complete` while it runs, or a
closed socket) only loses the answer: the write ends in a commit or a rollback, the
connection goes back to the pool, and the next writer writes."""

import asyncio
import json
import time

import asyncpg
import httpx
from sqlalchemy import text

from app.db import Database
from tests.e2e.conftest import gql
from tests.e2e.ws import Subscriber

CALLS = 30
POINTS = 5000

START = (
    'mutation { startRun(input: {experiment: "cancel"}) { ... on StartRunSuccess { run { id } } } }'
)
LOG = """
mutation($run: ID!, $points: [MetricPointInput!]) {
  logMetrics(input: {runId: $run, points: $points}) {
    __typename ... on LogMetricsSuccess { count } ... on Error { code message }
  }
}
"""
IDLE_IN_TRANSACTION = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND state LIKE 'idle in transaction%'
"""


def _points(key: str, n: int) -> list[dict[str, object]]:
    return [{"key": key, "value": i / n, "step": i} for i in range(n)]


async def _cancel_mutations(ws_url: str, run: str) -> None:
    """CALLS logMetrics mutations, cancelled at moments spread over how long one takes
    here (so some land in parsing, some mid-statement, some mid-commit): on one
    connection by `complete`, and every third also by closing its own connection."""
    points = _points("cancelled", POINTS)
    async with Subscriber(ws_url, LOG, {"run": run, "points": points}) as shared:
        started = time.perf_counter()
        answer = await shared.message()
        assert answer["payload"]["data"]["logMetrics"]["count"] == POINTS, answer
        took = time.perf_counter() - started
        # The database work is the end of a call; half the cancellations aim there.
        delays = [i * took / CALLS for i in range(0, CALLS, 2)]
        delays += [took * (0.6 + 0.5 * i / CALLS) for i in range(1, CALLS, 2)]
        for i, delay in enumerate(delays):
            if i % 3 == 2:
                async with Subscriber(ws_url, LOG, {"run": run, "points": points}) as own:
                    await asyncio.sleep(delay)
                    await own.ws.send(json.dumps({"id": own.id, "type": "complete"}))
                continue
            op = f"cancel-{i}"
            payload = {"query": LOG, "variables": {"run": run, "points": points}}
            await shared.ws.send(json.dumps({"id": op, "type": "subscribe", "payload": payload}))
            await asyncio.sleep(delay)
            await shared.ws.send(json.dumps({"id": op, "type": "complete"}))


async def _stored_points(database_url: str, run: str) -> int:
    db = Database(database_url)
    try:
        async with db.read() as session:
            query = text("SELECT count(*) FROM metric WHERE run_id = :run")
            return (await session.execute(query, {"run": run})).scalar_one()
    finally:
        await db.dispose()


async def _open_transactions(database_url: str) -> int:
    """Backends of the server's database left inside a transaction, once the cancelled
    work has had its chance to finish (a bounded number of looks)."""
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        for _ in range(50):
            if (count := await conn.fetchval(IDLE_IN_TRANSACTION)) == 0:
                return 0
            await asyncio.sleep(0.1)
        return count
    finally:
        await conn.close()


async def test_cancelled_mutations_leave_no_lock_and_no_open_transaction(
    start_server, database_url
):
    # given a server whose writers give up on a lock after 2 s (not 30) and, on
    # PostgreSQL, a pool small enough that a few leaked connections exhaust it
    server = start_server(
        MODELGRAPH_LOG_LEVEL="warning",
        MODELGRAPH_SQLITE_BUSY_TIMEOUT_MS="2000",
        MODELGRAPH_POOL_SIZE="3",
    )
    run = gql(server.base, START)["startRun"]["run"]["id"]

    # when a writer cancels its large logMetrics mutations while they run
    await _cancel_mutations(server.ws, run)

    # then the next write succeeds, the database is ready, and every cancelled batch was
    # stored completely or not at all
    written = gql(server.base, LOG, run=run, points=_points("after", 10))
    assert written["logMetrics"] == {"__typename": "LogMetricsSuccess", "count": 10}
    ready = await asyncio.to_thread(httpx.get, f"{server.base}/readyz", timeout=30)
    assert ready.status_code == 200, ready.text
    stored = await _stored_points(database_url, run)
    assert (stored - 10) % POINTS == 0, stored
    if database_url.startswith("postgresql"):
        assert await _open_transactions(database_url) == 0
    output = server.stop()
    assert "database is locked" not in output
    assert "CancelledError" not in output
    assert "Traceback" not in output
