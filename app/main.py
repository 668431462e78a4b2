"""create_app(settings): the Starlette app; the lifespan opens and closes the database."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from app.config import Settings
from app.db import Database
from app.events.bus import create_bus
from app.events.live import MetricFeed
from app.events.service import committed_seq
from app.graphql.context import Context
from app.graphql.schema import schema


class GraphQLApp(GraphQL):
    """Strawberry's ASGI view with our context: the app's database, never a shared session."""

    async def get_context(self, request: Any, response: Any) -> Context:
        state = request.app.state
        return Context(
            db=state.db,
            settings=state.settings,
            bus=state.bus,
            feed=state.feed,
            request=request,
            cache_loaders=not isinstance(request, WebSocket),
        )


async def healthz(request: Request) -> JSONResponse:
    try:
        async with request.app.state.db.read() as session:
            await session.execute(text("SELECT 1"))
    except Exception:  # the probe reports any database failure as unhealthy
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.db = db = Database.from_settings(settings)
        app.state.bus = bus = create_bus(db)
        app.state.feed = feed = MetricFeed()
        db.after_commit.append(lambda info: bus.advance(committed_seq(info)))
        db.after_commit.append(feed.publish)
        await bus.start(db)
        try:
            yield
        finally:
            feed.close()
            await bus.close()
            await db.dispose()

    graphql = GraphQLApp(
        schema,
        graphql_ide="graphiql" if settings.graphiql else None,
        # Legacy graphql-ws clients get "ka" messages; graphql-transport-ws relies on
        # uvicorn's WebSocket pings (the protocol has the client ping).
        keep_alive=True,
        keep_alive_interval=settings.keep_alive_seconds,
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
    )
    return Starlette(
        routes=[
            Route("/graphql", graphql),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
        ],
        lifespan=lifespan,
    )
