"""create_app(settings): the Starlette app; the lifespan opens and closes the database,
the event bus and access control."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from app import mlflow
from app.artifacts.store import BlobStore
from app.auth import service as auth_service
from app.auth.access import AccessControl
from app.config import Settings
from app.db import Database, migrate
from app.events.bus import create_bus
from app.events.live import MetricFeed
from app.events.service import committed_seq
from app.graphql import ide
from app.graphql.admission import Admission
from app.graphql.limits import QueryLimits
from app.graphql.schema import build_schema
from app.graphql.view import GraphQLView
from app.http import artifacts as artifact_routes
from app.observability import Metrics, RequestMiddleware
from app.ui import routes as ui_routes

PATHS = {"/graphql", "/healthz", "/readyz", "/metrics"}


async def healthz(request: Request) -> JSONResponse:
    """The process is up and answering (liveness: restart it if this fails)."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """The database answers, is at the migration this code expects, and takes a write
    (readiness: send traffic only when this is 200)."""
    try:
        async with request.app.state.db.read() as session:
            # Reachable first: current_revision reads a missing table as "never migrated".
            await session.execute(text("SELECT 1"))
            current = await migrate.current_revision(session)
    except Exception:  # any database failure means not ready; the reason is not leaked
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
    head = request.app.state.migration_head
    if current != head:
        body = {"status": "unavailable", "migration": current, "expected": head}
        return JSONResponse(body, 503)
    # A replica that reads but cannot write (the write lock held, the pool exhausted, the
    # disk full) is not ready either.
    settings = request.app.state.settings
    problem = await request.app.state.db.writer_problem(
        timeout_s=settings.ready_write_timeout_ms / 1000,
        min_free_bytes=settings.min_free_disk_bytes,
    )
    if problem is not None:
        return JSONResponse({"status": "unavailable", "database": problem}, 503)
    return JSONResponse({"status": "ok", "migration": current})


async def metrics(request: Request) -> Response:
    return Response(
        request.app.state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )


def query_limits(settings: Settings) -> QueryLimits:
    return QueryLimits(
        size=settings.max_query_bytes,
        depth=settings.max_query_depth,
        aliases=settings.max_query_aliases,
        tokens=settings.max_query_tokens,
        cost=settings.max_query_cost,
        page_default=settings.default_page_size,
        page_cap=settings.max_page_size,
        history_cap=settings.max_history_page_size,
        introspection=settings.introspection,
        fields=settings.max_query_fields,
        cache_bytes=settings.query_cache_bytes,
    )


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    observed = Metrics(PATHS)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.metrics = observed
        app.state.migration_head = migrate.head_revision()
        app.state.db = db = Database.from_settings(settings)
        app.state.bus = bus = create_bus(db)
        app.state.feed = feed = MetricFeed()
        app.state.blobs = BlobStore.from_setting(settings.artifact_store, settings.database_url)
        app.state.access = access = AccessControl(
            db,
            dev_mode=settings.dev_mode,
            anonymous_read=settings.anonymous_read,
            recheck_seconds=settings.token_recheck_seconds,
        )
        db.after_commit.append(lambda info: bus.advance(committed_seq(info)))
        db.after_commit.append(feed.publish)
        db.after_commit.append(lambda info: access.revoked(auth_service.revoked_in(info)))
        bus.listen(auth_service.REVOKED_CHANNEL, access.on_notify)
        feed.share(bus, db)  # between the workers of `serve --workers N` (PostgreSQL)
        await bus.start(db)
        await access.start()
        try:
            yield
        finally:
            feed.close()
            await access.close()
            await bus.close()
            await db.dispose()

    limits = query_limits(settings)
    graphql = GraphQLView(
        build_schema(limits),
        limits=limits,
        graphql_ide="graphiql" if settings.graphiql else None,
        # Legacy graphql-ws clients get "ka" messages; graphql-transport-ws relies on
        # uvicorn's WebSocket pings (the protocol has the client ping).
        keep_alive=True,
        keep_alive_interval=settings.keep_alive_seconds,
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        connection_init_wait_timeout=timedelta(seconds=settings.connection_init_timeout_seconds),
        admission=Admission.of(settings, lambda limit: observed.limit_refusals.labels(limit).inc()),
    )
    return Starlette(
        routes=[
            *ui_routes.ROUTES,
            Route("/graphql", graphql),
            WebSocketRoute("/graphql", graphql),
            Route(ide.ASSET_ROUTE, ide.serve_asset),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            *artifact_routes.ROUTES,
            *mlflow.routes(),
        ],
        middleware=[
            Middleware(
                RequestMiddleware,
                metrics=observed,
                max_body_bytes=settings.max_body_bytes,
                # Artifact uploads stream to the store under their own limit.
                unbounded_prefixes=("/artifacts/", *mlflow.STREAMED_PREFIXES),
            )
        ],
        lifespan=lifespan,
    )
