"""A full disk, a database outage or a held write lock is the server's condition: the
client gets SERVICE_UNAVAILABLE (retry later), /metrics counts it apart from bugs, and
/readyz says so; once the condition passes, writes work again."""

import asyncio
import contextlib
import shutil
import sqlite3
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from app.config import Settings
from app.main import create_app
from tests.conftest import GraphQLClient, asgi_client

START = (
    'mutation { startRun(input: {experiment: "disk"}) { ... on StartRunSuccess { run { id } } } }'
)
LOG = """
mutation($run: ID!, $values: MetricValueList!) {
  logMetrics(input: {runId: $run, series: [{key: "loss", values: $values}]}) {
    __typename ... on LogMetricsSuccess { count }
  }
}
"""
EXPERIMENTS = "{ experiments { nodes { name } } }"
VALUES = [i / 5000 for i in range(5000)]


def counter(scraped: str, name: str) -> float:
    line = next(x for x in scraped.splitlines() if x.startswith(name + " "))
    return float(line.split()[1])


@contextlib.asynccontextmanager
async def serving(url: str, **overrides: Any) -> AsyncIterator[tuple[Any, GraphQLClient]]:
    app = create_app(Settings(database_url=url, dev_mode=True, **overrides))
    async with app.router.lifespan_context(app), asgi_client(app) as client:
        yield app, GraphQLClient(client)


@pytest.mark.sqlite
async def test_a_full_sqlite_disk_is_service_unavailable_not_a_bug(database_url):
    async with serving(database_url) as (app, gql):
        run = (await gql(START))["startRun"]["run"]["id"]

        # given a writer whose database file may not grow (SQLITE_FULL, as a full disk)
        def no_growth(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA page_count")
            pages = cursor.fetchone()[0]
            cursor.execute(f"PRAGMA max_page_count = {pages}")
            cursor.close()

        engine = app.state.db.write_engine
        await engine.dispose()
        event.listen(engine.sync_engine, "connect", no_growth)

        # when a batch that needs new pages is written
        refused = await gql.raw(LOG, run=run, values=VALUES)
        ready = await gql.client.get("/readyz")
        scraped = (await gql.client.get("/metrics")).text

        # then it is SERVICE_UNAVAILABLE with a retry hint, counted apart from bugs
        (error,) = refused["errors"]
        assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE", error
        assert error["extensions"]["retryAfter"] > 0
        assert "disk is full" in error["message"]
        assert "retry" in error["message"]
        assert "sqlite" not in str(refused).lower()
        assert counter(scraped, "modelgraph_unavailable_total") == 1
        assert counter(scraped, "modelgraph_internal_errors_total") == 0
        assert ready.status_code == 200  # the disk itself has room: see the next test

        # and when the file may grow again, the same write succeeds
        event.remove(engine.sync_engine, "connect", no_growth)
        await engine.dispose()
        written = await gql(LOG, run=run, values=VALUES)
        assert written["logMetrics"] == {"__typename": "LogMetricsSuccess", "count": 5000}


@pytest.mark.sqlite
async def test_readyz_is_503_when_the_disk_has_too_little_room(database_url, tmp_path):
    free = shutil.disk_usage(tmp_path).free
    async with serving(database_url, min_free_disk_bytes=free * 2) as (_app, gql):
        ready = await gql.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "database": "disk full"}


@contextlib.contextmanager
def write_lock_held(database_url: str) -> Iterator[None]:
    """SQLite's write lock held by another connection (a wedged writer) in the block."""
    holder = sqlite3.connect(make_url(database_url).database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.sqlite
async def test_readyz_is_503_while_the_write_lock_is_held_and_200_after(database_url):
    async with serving(database_url, ready_write_timeout_ms=100) as (_app, gql):
        # given another process holding SQLite's write lock (a wedged writer)
        with write_lock_held(database_url):
            held = await gql.client.get("/readyz")
            reads = await gql.raw(EXPERIMENTS)
        released = await gql.client.get("/readyz")

    # then readiness says the writer cannot write, though reads still work
    assert held.status_code == 503
    assert held.json() == {"status": "unavailable", "database": "writer unavailable"}
    assert "errors" not in reads
    assert released.status_code == 200


@pytest.mark.sqlite
async def test_a_locked_sqlite_database_is_service_unavailable(database_url):
    async with serving(database_url, sqlite_busy_timeout_ms=100) as (_app, gql):
        with write_lock_held(database_url):
            refused = await gql.raw(START)
        scraped = (await gql.client.get("/metrics")).text
    assert refused["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert counter(scraped, "modelgraph_unavailable_total") == 1
    assert counter(scraped, "modelgraph_internal_errors_total") == 0


class Proxy:
    """A TCP relay on 127.0.0.1 to PostgreSQL that can be cut (every connection closed,
    new ones refused) and restored on the same port: a database outage, for real."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        await self.server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}


@pytest.mark.postgres
async def test_a_postgres_outage_is_service_unavailable_and_recovers(database_url):
    # given a server whose PostgreSQL is reached through a relay that can be cut
    url = make_url(database_url)
    proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    # Cut however the test ends: a relay left open leaks its sockets into the next test.
    try:
        async with serving(proxied, ready_write_timeout_ms=500) as (_app, gql):
            assert (await gql(START))["startRun"]["run"]["id"]

            # when the database goes away
            await proxy.cut()
            write = await gql.raw(START)
            read = await gql.raw(EXPERIMENTS)
            ready = await gql.client.get("/readyz")
            scraped = (await gql.client.get("/metrics")).text

            # then reads and writes are SERVICE_UNAVAILABLE, counted apart from bugs
            for body in (write, read):
                assert body["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE", body
            assert counter(scraped, "modelgraph_unavailable_total") == 2
            assert counter(scraped, "modelgraph_internal_errors_total") == 0
            assert ready.status_code == 503

            # and once it is back, the same replica writes and is ready again
            await proxy.start()
            assert (await gql(START))["startRun"]["run"]["id"]
            assert (await gql.client.get("/readyz")).status_code == 200
    finally:
        await proxy.cut()
