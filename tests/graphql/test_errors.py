"""Bugs and outages are masked for clients: no stack trace, no 500."""

import httpx

from app.config import Settings
from app.main import create_app

QUERY = "{ experiments { nodes { name } } }"


async def test_a_database_failure_is_masked_not_leaked(tmp_path):
    # given a server whose database cannot be opened (authentication off, so the query
    # itself is what needs the database)
    url = f"sqlite+aiosqlite:///{tmp_path}/missing/dir/x.db"
    app = create_app(Settings(database_url=url, dev_mode=True))
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
    assert "sqlite" not in response.text.lower() and "Traceback" not in response.text
    assert health.status_code == 200
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "database": "unreachable"}


async def test_a_database_failure_while_authenticating_is_masked_too(tmp_path, caplog):
    # given a server whose database cannot be opened, with authentication on
    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/missing/dir/x.db"))
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
    assert "sqlite" not in response.text.lower() and "Traceback" not in response.text
    assert any("job-42" in r.getMessage() for r in caplog.records)
