"""Bugs and outages are masked for clients: no stack trace, no 500."""

import httpx

from app.config import Settings
from app.main import create_app

QUERY = "{ experiments { nodes { name } } }"


async def test_a_database_failure_is_masked_not_leaked(tmp_path):
    # given a server whose database cannot be opened
    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/missing/dir/x.db"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            # when a query needs it
            response = await client.post("/graphql", json={"query": QUERY})
            health = await client.get("/healthz")

    # then the client gets a generic error with a code, and nothing of the internals
    assert response.status_code == 200
    error = response.json()["errors"][0]
    assert error["message"] == "Internal server error."
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert "sqlite" not in response.text.lower() and "Traceback" not in response.text
    assert health.status_code == 503
