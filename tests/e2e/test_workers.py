"""`modelgraph serve --workers N`: what one worker commits, the others act on. Lifecycle
events, token revocations and live metric points cross between the worker processes of
one server (PostgreSQL); SQLite refuses more than one.

Each worker names itself in the `x-modelgraph-worker` header, so a test reaches a given
worker by opening connections until that worker answers one, then keeping it."""

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.auth.roles import Role
from app.client.server import free_port
from tests.conftest import make_token
from tests.e2e.conftest import Auth, Server, cli
from tests.e2e.test_cli_serve import env_for
from tests.e2e.ws import Subscriber

WORKER = "x-modelgraph-worker"
ATTEMPTS = 400
WATCH = 'subscription { lifecycleEvents(model: "m") { type versionNumber toStage } }'
REGISTER = 'mutation { registerModelVersion(input: {model: "m"}) { __typename } }'
MOVE = """
mutation($stage: Stage!) {
  transitionModelVersion(input: {model: "m", version: 1, stage: $stage}) { __typename }
}
"""
REVOKE = "mutation($name: String!) { revokeApiToken(input: {name: $name}) { __typename } }"
RUN_METRICS = "subscription($run: ID!) { runMetrics(runId: $run) { points { key value step } } }"
START = 'mutation { startRun(input: {experiment: "w"}) { ... on StartRunSuccess { run { id } } } }'
LOG = """
mutation($run: ID!, $step: Long!) {
  logMetrics(input: {runId: $run, points: [{key: "loss", value: 0.5, step: $step}]}) { __typename }
}
"""
END_RUN = "mutation($run: ID!) { endRun(input: {runId: $run}) { __typename } }"


def workers_of(server: Server, count: int) -> list[str]:
    """The pids of the server's `count` workers, once each has answered (a fresh
    connection per request: the kernel hands each to whichever worker accepts first)."""
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    while len(seen) < count and time.monotonic() < deadline:
        with httpx.Client(base_url=server.base) as client:
            response = client.get("/healthz")
        if response.status_code == 200:
            seen.add(response.headers[WORKER])
    assert len(seen) == count, seen
    return sorted(seen)


def pinned(server: Server, worker: str, token: str | None = None) -> httpx.Client:
    """A keep-alive client whose connection the worker `worker` serves."""
    headers = {"Authorization": f"Bearer {token or Auth.token}"}
    for _ in range(ATTEMPTS):
        client = httpx.Client(base_url=server.base, headers=headers, timeout=30)
        if client.get("/healthz").headers[WORKER] == worker:
            return client
        client.close()
    pytest.fail(f"no connection reached worker {worker}")


@pytest.fixture
def clients() -> Iterator[list[httpx.Client]]:
    opened: list[httpx.Client] = []
    yield opened
    for client in opened:
        client.close()


def data(client: httpx.Client, query: str, **variables: object) -> dict:
    response = client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


async def subscribed_on(server: Server, worker: str, query: str, variables: dict) -> Subscriber:
    """A subscription whose WebSocket the worker `worker` serves."""
    for _ in range(ATTEMPTS):
        subscriber = await Subscriber(server.ws, query, variables).open()
        response = subscriber.ws.response
        assert response is not None
        if response.headers[WORKER] == worker:
            return subscriber
        await subscriber.close()
    pytest.fail(f"no WebSocket reached worker {worker}")


async def test_sqlite_refuses_more_than_one_worker(tmp_path: Path):
    # given a SQLite database
    database = tmp_path / "one.db"
    env = env_for(f"sqlite+aiosqlite:///{database}")

    # when a server is asked for two workers
    result = cli("serve", "--port", "1", "--workers", "2", env=env)

    # then it refuses as a usage error, says why, and touched nothing
    assert result.returncode == 2
    assert "--workers 2 needs PostgreSQL" in result.stderr
    assert "single writer" in result.stderr
    assert not database.exists()
    assert cli("serve", "--workers", "0", env=env).returncode == 2


@pytest.mark.postgres
async def test_a_watcher_on_one_worker_sees_a_promotion_made_through_the_other(
    start_server, clients
):
    server = start_server("--workers", "2")
    a, b = workers_of(server, 2)
    clients.append(through_a := pinned(server, a))
    data(through_a, REGISTER)
    data(through_a, MOVE, stage="STAGING")

    watcher = await subscribed_on(server, b, WATCH, {})
    try:
        data(through_a, MOVE, stage="PRODUCTION")
        event = (await watcher.next())["lifecycleEvents"]
    finally:
        await watcher.close()

    assert event == {"type": "STAGE_CHANGED", "versionNumber": 1, "toStage": "PRODUCTION"}


@pytest.mark.postgres
async def test_a_token_revoked_through_one_worker_is_refused_by_the_other_at_once(
    start_server, database_url, clients
):
    # given workers that remember a valid token for ten minutes
    server = start_server("--workers", "2", MODELGRAPH_TOKEN_RECHECK_SECONDS="600")
    a, b = workers_of(server, 2)
    secret = await make_token(database_url, "ci", Role.READER)
    clients.append(as_ci_on_b := pinned(server, b, secret))
    clients.append(admin_on_a := pinned(server, a))
    # and worker B has just found the token valid
    assert data(as_ci_on_b, "{ viewer { name } }") == {"viewer": {"name": "ci"}}

    # when it is revoked through worker A
    assert data(admin_on_a, REVOKE, name="ci")["revokeApiToken"]["__typename"] == (
        "RevokeApiTokenSuccess"
    )

    # then the very next request to worker B is refused
    refused = as_ci_on_b.post("/graphql", json={"query": "{ viewer { name } }"})
    assert refused.headers[WORKER] == b
    assert refused.status_code == 401, refused.text


@pytest.mark.postgres
async def test_points_logged_through_one_worker_stream_to_a_subscriber_on_the_other(
    start_server, clients
):
    server = start_server("--workers", "2")
    a, b = workers_of(server, 2)
    clients.append(through_a := pinned(server, a))
    clients.append(through_b := pinned(server, b))
    run = data(through_a, START)["startRun"]["run"]["id"]

    live = await subscribed_on(server, b, RUN_METRICS, {"run": run})
    try:
        # the subscription is live once it answers; log until the first batch arrives
        for step in range(50):
            data(through_a, LOG, run=run, step=step)
            try:
                first = (await asyncio.wait_for(live.next(), 0.5))["runMetrics"]["points"]
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("no live metrics from the other worker")
        # points logged through either worker, the subscriber's own included
        data(through_a, LOG, run=run, step=1000)
        data(through_b, LOG, run=run, step=1001)
        data(through_a, LOG, run=run, step=1002)
        later: list[dict] = []
        while len(later) < 3:
            later += (await live.next())["runMetrics"]["points"]
        data(through_a, END_RUN, run=run)
        end = await live.message()
    finally:
        await live.close()

    assert [p["key"] for p in first] == ["loss"]
    # each point once, in order, and the run's end after them
    assert later == [{"key": "loss", "value": 0.5, "step": s} for s in (1000, 1001, 1002)]
    assert end["type"] == "complete"


@pytest.mark.postgres
async def test_workers_that_cannot_start_stop_the_server_with_exit_1(database_url):
    # given a setting every worker refuses at start-up (the supervisor does not read it)
    env = {**env_for(database_url), "MODELGRAPH_ARTIFACT_STORE": "bogus://x"}

    # when a server with two workers starts
    result = cli("serve", "--port", str(free_port()), "--workers", "2", env=env)

    # then it stops instead of restarting them for ever, and says why
    assert result.returncode == 1
    assert "artifact store URL must be file:// or s3://" in result.stdout + result.stderr
