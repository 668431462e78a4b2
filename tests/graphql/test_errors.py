"""Bugs and outages are masked for clients: no stack trace, no 500."""

import asyncio
import threading
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from app.config import Settings
from app.main import create_app

QUERY = "{ experiments { nodes { name } } }"


def join_failed_sqlite_connects() -> None:
    """aiosqlite stops the worker thread of a connection that failed to open without
    waiting for it; a thread still running when its event loop closes raises there
    ("Event loop is closed"). Wait for them while the loop is open."""
    for thread in threading.enumerate():
        if thread.name.endswith("(_connection_worker_thread)"):
            thread.join(timeout=10)


@pytest.fixture
async def unopenable_url(tmp_path) -> AsyncIterator[str]:
    """A SQLite database that cannot be opened: its directory does not exist."""
    yield f"sqlite+aiosqlite:///{tmp_path}/missing/dir/x.db"
    # An async fixture's teardown runs before the test's event loop closes.
    await asyncio.to_thread(join_failed_sqlite_connects)


async def test_a_database_failure_is_masked_not_leaked(unopenable_url):
    # given a server whose database cannot be opened (authentication off, so the query
    # itself is what needs the database)
    app = create_app(Settings(database_url=unopenable_url, dev_mode=True))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            # when a query needs it
            response = await client.post("/graphql", json={"query": QUERY})
            health = await client.get("/healthz")
            ready = await client.get("/readyz")

    # then the client is told to retry later (the server's condition, not a bug), with
    # nothing of the internals; the process is alive but not ready
    assert response.status_code == 200
    error = response.json()["errors"][0]
    assert error["message"].startswith("the service is unavailable")
    assert error["extensions"] == {"code": "SERVICE_UNAVAILABLE", "retryAfter": 5}
    assert "sqlite" not in response.text.lower()
    assert "Traceback" not in response.text
    assert health.status_code == 200
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "database": "unreachable"}


async def test_a_database_failure_while_authenticating_is_masked_too(unopenable_url, caplog):
    # given a server whose database cannot be opened, with authentication on
    app = create_app(Settings(database_url=unopenable_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            # when a request comes with a token to look up
            response = await client.post(
                "/graphql",
                json={"query": QUERY},
                headers={"Authorization": "Bearer mg_x", "X-Request-ID": "job-42"},
            )

    # then it is a 503 to retry later naming the caller's request id, which the log has too
    assert response.status_code == 503
    assert response.headers["x-request-id"] == "job-42"
    assert response.headers["retry-after"] == "5"
    assert response.json()["errors"][0]["extensions"] == {
        "code": "SERVICE_UNAVAILABLE",
        "retryAfter": 5,
        "requestId": "job-42",
    }
    assert "sqlite" not in response.text.lower()
    assert "Traceback" not in response.text
    assert any("job-42" in r.getMessage() for r in caplog.records)


def test_a_database_failure_while_authenticating_a_websocket_says_try_again_later(
    unopenable_url,
):
    # given a server whose database cannot be opened, with authentication on
    app = create_app(Settings(database_url=unopenable_url))
    with TestClient(app) as client:
        # when a WebSocket client authenticates
        with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            ws.send_json({"type": "connection_init", "payload": {"Authorization": "Bearer mg_x"}})
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
        metrics = client.get("/metrics").text
        # The client's event loop closes with it.
        join_failed_sqlite_connects()

    # then it is closed with 1013 (try again later), counted as unavailable, not as a bug
    assert closed.value.code == 1013
    assert "service is unavailable" in closed.value.reason
    assert "modelgraph_unavailable_total 1.0" in metrics
    assert "modelgraph_internal_errors_total 0.0" in metrics
