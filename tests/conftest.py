"""Fixtures: a fresh migrated database per test (SQLite file, or PostgreSQL when
MODELGRAPH_TEST_DATABASE_URL is set), the ASGI app over HTTP, and a GraphQL helper."""

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, SessionTransaction

from app.auth import service as auth_service
from app.auth.roles import Principal, Role
from app.config import Settings
from app.db import Database, migrate
from app.db.engine import BACKGROUND, READ_ONLY
from app.db.tables import metadata
from app.graphql.context import Context
from app.main import create_app

E2E = Path(__file__).parent / "e2e"


def _worker_url(url: str | None) -> str | None:
    """Under pytest-xdist each worker gets a database of its own (`<name>_gw0`, ...), made
    on first use: workers truncating one database under each other's tests would not do."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not url or not worker:
        return url
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{worker}").render_as_string(hide_password=False)


BASE_PG_URL = os.environ.get("MODELGRAPH_TEST_DATABASE_URL")
PG_URL = _worker_url(BASE_PG_URL)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """A run that leaves e2e out (the fast tier) does not import tests/e2e at all: every
    test there is e2e, and importing them (the official MLflow client, sklearn) cost each
    xdist worker seconds before the first test ran."""
    if "not e2e" in (config.option.markexpr or "") and (
        collection_path == E2E or E2E in collection_path.parents
    ):
        return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Everything under tests/e2e runs a real server or CLI subprocess.
    for item in items:
        if E2E in item.path.parents:
            item.add_marker(pytest.mark.e2e)
    if PG_URL:
        # A SQLite-only test has nothing to check here: not run, and not counted as a
        # skip (under CI a skip on PostgreSQL is a test that should have run).
        kept = [item for item in items if "sqlite" not in item.keywords]
        config.hook.pytest_deselected(items=[i for i in items if "sqlite" in i.keywords])
        items[:] = kept
        return
    skip = pytest.mark.skip(reason="needs MODELGRAPH_TEST_DATABASE_URL (PostgreSQL)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Under CI with PostgreSQL configured, a skipped test is a test that did not run.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI") and PG_URL and skipped:
        if reporter:
            reporter.write_line(
                f"FAIL: {skipped} test(s) skipped under CI with PostgreSQL", red=True
            )
        session.exitstatus = 1


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def sqlite_admin_template(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """The migrated template with the ADMIN token already made (and its secret): most
    tests need one, and making it per test cost an engine and a synced commit each."""
    path = tmp_path_factory.mktemp("template") / "admin.db"
    shutil.copyfile(sqlite_template, path)
    secret: list[str] = []

    async def make() -> None:
        secret.append(await make_token(f"sqlite+aiosqlite:///{path}", ADMIN, Role.ADMIN))

    _in_a_thread(make())
    return path, secret[0]


@pytest.fixture(scope="session")
def postgres_migrated() -> str:
    assert PG_URL
    if PG_URL != BASE_PG_URL:
        assert BASE_PG_URL
        create_postgres_database(BASE_PG_URL, make_url(PG_URL).database or "")
    reset_postgres_schema(PG_URL)
    migrate.upgrade(PG_URL)
    return PG_URL


def _in_a_thread(work: Any) -> None:
    # Session fixtures are synchronous, and may run while a test's event loop is running.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, work).result()


def create_postgres_database(url: str, name: str) -> None:
    """CREATE DATABASE `name` on the server of `url` unless it exists."""

    async def create() -> None:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    _in_a_thread(create())


def reset_postgres_schema(url: str) -> None:
    async def reset() -> None:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        finally:
            await conn.close()

    _in_a_thread(reset())


def _refuse_writes(session: Session, _transaction: SessionTransaction, conn: Connection) -> None:
    # The database itself refuses, so raw SQL and ORM flushes are caught alike; on
    # PostgreSQL for this transaction only (one engine serves reads and writes), on
    # SQLite for the connection, which only the read engine's sessions ever get.
    if not session.info.get(READ_ONLY):
        return
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    else:
        conn.exec_driver_sql("PRAGMA query_only = ON")


@pytest.fixture(autouse=True, scope="session")
def read_sessions_refuse_writes() -> Iterator[None]:
    """Every `Database.read()` session of an in-process test refuses INSERT, UPDATE and
    DELETE (tests/db/test_read_sessions.py)."""
    event.listen(Session, "after_begin", _refuse_writes)
    yield
    event.remove(Session, "after_begin", _refuse_writes)


async def _truncate_postgres(url: str) -> None:
    tables = ", ".join(t.name for t in metadata.sorted_tables)
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        await conn.execute(
            "INSERT INTO experiment (id, name, tags, created_at) VALUES (0, 'Default', '{}', now())"
        )
    finally:
        await conn.close()


@pytest.fixture
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if PG_URL:
        url = request.getfixturevalue("postgres_migrated")
        await _truncate_postgres(url)
        return url
    if "admin_secret" in request.fixturenames:
        template, _secret = request.getfixturevalue("sqlite_admin_template")
    else:
        template = request.getfixturevalue("sqlite_template")
    path = tmp_path / "modelgraph.db"
    shutil.copyfile(template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """The environment's settings, read once: Settings() parses every MODELGRAPH_*
    variable (about 3 ms), and each test only changes where its data goes."""
    return Settings()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, base_settings: Settings) -> Settings:
    # On PostgreSQL no database file says where the local artifact store goes (it would be
    # ./artifacts in the checkout): the test's own folder holds it.
    store = None if database_url.startswith("sqlite") else str(tmp_path / "artifacts")
    return base_settings.model_copy(update={"database_url": database_url, "artifact_store": store})


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.database_url)
    yield database
    await database.dispose()


ADMIN = "test-admin"


async def make_token(target: str | Database, name: str, role: Role) -> str:
    """A token made through the service, on an open Database or the database at a URL
    (opened for this alone); its secret."""
    if isinstance(target, Database):
        async with target.unit_of_work() as session:
            _token, secret = await auth_service.create_token(
                session, name=name, role=role, actor="test"
            )
        return secret
    database = Database(target)
    try:
        return await make_token(database, name, role)
    finally:
        await database.dispose()


@pytest.fixture
async def admin_secret(request: pytest.FixtureRequest, database_url: str) -> str:
    """An ADMIN token, the one the `client` fixture sends (actor: test-admin). On SQLite
    it came with the database's template (see `database_url`)."""
    if PG_URL:
        return await make_token(database_url, ADMIN, Role.ADMIN)
    _template, secret = request.getfixturevalue("sqlite_admin_template")
    return secret


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


def subscription_context(app: Any, principal: Principal, db: Database | None = None) -> Context:
    """What an authenticated WebSocket operation gets as its context, for running a
    subscription in process (`schema.subscribe`) on the app's database, bus and feed."""
    state = app.state
    return Context(
        db=db or state.db,
        settings=state.settings,
        bus=state.bus,
        feed=state.feed,
        cache_loaders=False,
        principal=principal,
    )


def asgi_client(app: Any, secret: str | None = None) -> httpx.AsyncClient:
    """An HTTP client to the app in process, sending `secret` as its bearer token."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers)


@pytest.fixture
async def client(app: Any, admin_secret: str) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(app, admin_secret) as c:
        yield c


class GraphQLClient:
    """Posts GraphQL over HTTP to the app; `__call__` insists on a clean 200 with no errors."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def raw(self, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.client.post("/graphql", json={"query": query, "variables": variables})
        assert response.status_code == 200, response.text
        return response.json()

    async def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        body = await self.raw(query, **variables)
        assert "errors" not in body, body["errors"]
        return body["data"]

    async def error(self, query: str, **variables: Any) -> dict[str, Any]:
        """The single top-level error a request produced (for malformed requests)."""
        body = await self.raw(query, **variables)
        assert body.get("errors"), body
        assert len(body["errors"]) == 1, body["errors"]
        return body["errors"][0]


@pytest.fixture
def gql(client: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(client)


@pytest.fixture
def app_with(
    database_url: str, admin_secret: str
) -> Callable[..., AbstractAsyncContextManager[GraphQLClient]]:
    """An app on the test database with some settings changed, and a GraphQL client to it
    (sending the ADMIN token unless `secret` says otherwise)."""

    @asynccontextmanager
    async def start(secret: str | None = admin_secret, **overrides: Any) -> AsyncIterator[Any]:
        application = create_app(Settings(database_url=database_url, **overrides))
        async with (
            application.router.lifespan_context(application),
            asgi_client(application, secret) as c,
        ):
            yield GraphQLClient(c)

    return start


class StatementCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(
        self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, *args: Any
    ) -> None:
        # BEGIN/COMMIT, per-connection PRAGMAs and the event pump's reads are not
        # queries a screen makes.
        if context is not None and context.execution_options.get(BACKGROUND):
            return
        if statement.strip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")):
            self.statements.append(statement)

    @property
    def count(self) -> int:
        return len(self.statements)

    def reset(self) -> None:
        self.statements.clear()


@pytest.fixture
def sql_counter(app: Any) -> Iterator[StatementCounter]:
    counter = StatementCounter()
    db: Database = app.state.db
    engines = {id(e): e for e in (db.read_engine, db.write_engine)}.values()
    for engine in engines:
        event.listen(engine.sync_engine, "before_cursor_execute", counter)
    yield counter
    for engine in engines:
        event.remove(engine.sync_engine, "before_cursor_execute", counter)
