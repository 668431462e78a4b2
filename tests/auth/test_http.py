"""Authentication on HTTP: a token or a 401 before any GraphQL runs; anonymous reads and
dev mode when asked for; the operational endpoints open to probes and scrapers."""

import httpx
from sqlalchemy import text

from app.db.migrate import head_revision
from tests.conftest import asgi_client
from tests.integrity import snapshot

HEAD = head_revision()

VIEWER = "{ viewer { name role } }"
START = """
mutation { startRun(input: {experiment: "e"}) {
  __typename ... on PermissionDenied { requiredRole role operation } } }
"""


async def post(app, query: str, **headers: str) -> httpx.Response:
    async with asgi_client(app) as client:
        return await client.post("/graphql", json={"query": query}, headers=headers)


async def test_no_token_or_a_bad_one_is_a_401_and_changes_nothing(app, db):
    before = await snapshot(db)
    for headers in (
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer mg_" + "x" * 43},
        {"Authorization": "Bearer " + "x" * 10_000},
        {"Authorization": "mg_not-a-token"},
    ):
        response = await post(app, START, **headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "UNAUTHENTICATED"
        assert error["extensions"]["requestId"] == response.headers["x-request-id"]
    assert await snapshot(db) == before


async def test_anonymous_reads_when_allowed_but_never_writes(app_with, db):
    async with app_with(secret=None, anonymous_read=True) as gql:
        # reads work without a token, as READER
        assert await gql(VIEWER) == {"viewer": {"name": "anonymous", "role": "READER"}}
        # writes are refused with the role they need, and change nothing
        before = await snapshot(db)
        refused = (await gql(START))["startRun"]
        assert refused == {
            "__typename": "PermissionDenied",
            "requiredRole": "WRITER",
            "role": "READER",
            "operation": "startRun",
        }
        assert await snapshot(db) == before
        # a token that is wrong is still refused: no silent fall back to anonymous
        response = await gql.client.post(
            "/graphql", json={"query": VIEWER}, headers={"Authorization": "Bearer mg_wrong"}
        )
        assert response.status_code == 401


async def test_dev_mode_is_admin_without_a_token(app_with, db):
    async with app_with(secret=None, dev_mode=True) as gql:
        assert await gql(VIEWER) == {"viewer": {"name": "dev", "role": "ADMIN"}}
        assert (await gql(START))["startRun"]["__typename"] == "StartRunSuccess"


async def test_graphiql_and_probes_need_no_token_but_queries_by_get_do(app):
    async with asgi_client(app) as client:
        page = await client.get("/graphql", headers={"accept": "text/html"})
        by_get = await client.get("/graphql", params={"query": VIEWER})
        probes = [await client.get(path) for path in ("/healthz", "/readyz", "/metrics")]
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    assert by_get.status_code == 401
    assert [p.status_code for p in probes] == [200, 200, 200]
    assert probes[1].json() == {"status": "ok", "migration": HEAD}


async def set_revision(db, revision: str) -> None:
    async with db.unit_of_work() as session:
        await session.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


async def test_readyz_says_when_the_database_is_behind_the_code(app, db):
    await set_revision(db, "0002")
    try:
        async with asgi_client(app) as client:
            ready = await client.get("/readyz")
            alive = await client.get("/healthz")
    finally:
        # PostgreSQL's test schema outlives the test (only the tables are emptied)
        await set_revision(db, HEAD)
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "migration": "0002", "expected": HEAD}
    assert alive.status_code == 200


async def test_metrics_count_requests_refusals_and_latency(app, gql):
    # given some traffic: a good query, a request without a token, a refused operation
    await gql(VIEWER)
    await post(app, VIEWER)
    async with asgi_client(app) as client:
        scraped = (await client.get("/metrics")).text

    # then /metrics has them in Prometheus text format
    assert 'modelgraph_http_requests_total{path="/graphql",status="200"}' in scraped
    assert 'modelgraph_http_requests_total{path="/graphql",status="401"} 1.0' in scraped
    assert 'modelgraph_auth_failures_total{transport="http"} 1.0' in scraped
    assert 'modelgraph_http_request_duration_seconds_bucket{le="+Inf",path="/graphql"}' in scraped
    assert "modelgraph_websocket_connections 0.0" in scraped
    assert "modelgraph_internal_errors_total 0.0" in scraped


async def test_a_request_id_is_kept_when_plausible_and_made_otherwise(app, gql):
    async with asgi_client(app) as client:
        kept = await client.get("/healthz", headers={"x-request-id": "ci-job-7.step:2"})
        made = await client.get("/healthz", headers={"x-request-id": "two words\r\nX-Evil: 1"})
    assert kept.headers["x-request-id"] == "ci-job-7.step:2"
    assert len(made.headers["x-request-id"]) == 32
    assert "Evil" not in made.headers["x-request-id"]
