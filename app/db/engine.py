"""Engines and units of work for SQLite (the embedded default) and PostgreSQL."""

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.config import Settings
from app.errors import ConflictError, ValidationError

BACKGROUND = "modelgraph_background"
log = logging.getLogger("modelgraph.db")


# PostgreSQL SQLSTATEs that are the client's input or a retryable race, not bugs.
_RETRYABLE = {"40P01", "40001"}  # deadlock detected, serialization failure
_BAD_INPUT_CLASS = "22"  # data exception: a NUL byte, a number out of range, ...


def _refusal(exc: DBAPIError) -> Exception | None:
    """A typed refusal for database errors the client caused or may retry; else None."""
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if state in _RETRYABLE:
        return ConflictError("input", "a concurrent change conflicts with this one; retry")
    if state and state.startswith(_BAD_INPUT_CLASS):
        return ValidationError("input", "contains a value the database cannot store")
    return None


def _sqlite_engine(
    url: str, *, busy_timeout_ms: int, writer: bool, pool_size: int, synchronous: str
) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0 if writer else 5,
        pool_timeout=max(busy_timeout_ms / 1000, 30),
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    # A deferred BEGIN that later upgrades to a write lock ignores busy_timeout and
    # fails with "database is locked"; IMMEDIATE takes the lock up front (NOTES.md).
    begin = "BEGIN IMMEDIATE" if writer else "BEGIN"

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    return engine


class Database:
    """The engines, their sessionmakers and the unit of work, opened once per process."""

    def __init__(
        self,
        url: str,
        *,
        busy_timeout_ms: int = 30_000,
        pool_size: int = 20,
        synchronous: str = "FULL",
    ) -> None:
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        if self.dialect == "sqlite":
            # One writer connection: SQLite has one write lock anyway, and queueing in the
            # pool instead of in busy_timeout cuts the tail latency (NOTES.md).
            self.write_engine = _sqlite_engine(
                url,
                busy_timeout_ms=busy_timeout_ms,
                writer=True,
                pool_size=1,
                synchronous=synchronous,
            )
            # Loader batches of one request read concurrently: a pool smaller than that
            # opens and closes overflow connections on every request.
            self.read_engine = _sqlite_engine(
                url,
                busy_timeout_ms=busy_timeout_ms,
                writer=False,
                pool_size=pool_size,
                synchronous=synchronous,
            )
        else:
            self.write_engine = create_async_engine(
                url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
            self.read_engine = self.write_engine
        self._writes = async_sessionmaker(self.write_engine, expire_on_commit=False)
        # Called with session.info after each commit (the event bus listens here).
        self.after_commit: list[Callable[[dict[str, Any]], None]] = []
        self._reads = async_sessionmaker(self.read_engine, expire_on_commit=False)

    def _run_after_commit(self, info: dict[str, Any]) -> None:
        # The change has committed: a failing notification must not turn it into an
        # error the client would retry. Watchers catch up from the table regardless.
        for hook in self.after_commit:
            try:
                hook(info)
            except Exception:
                log.exception("after-commit hook failed")

    @classmethod
    def from_settings(cls, settings: Settings) -> "Database":
        return cls(
            settings.database_url,
            busy_timeout_ms=settings.sqlite_busy_timeout_ms,
            synchronous=settings.sqlite_synchronous,
            pool_size=settings.pool_size,
        )

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """One write transaction: commits if the block returns, rolls back if it raises.

        A constraint that a concurrent writer got to first (a unique name, the single
        PRODUCTION slot) surfaces as a ConflictError the client can retry, not a 500.
        """
        try:
            async with self._writes() as session:
                async with session.begin():
                    yield session
                self._run_after_commit(session.info)
        except IntegrityError as exc:
            raise ConflictError(
                "input", "a concurrent change conflicts with this one; read again and retry"
            ) from exc
        except DBAPIError as exc:
            if (refusal := _refusal(exc)) is None:
                raise
            raise refusal from exc

    @asynccontextmanager
    async def read(self, *, background: bool = False) -> AsyncIterator[AsyncSession]:
        """A short read session for one resolver or one loader batch. `background` marks
        reads that are not the request's own (the event pump, token lookups), so
        per-request counts can skip them."""
        try:
            async with self._reads() as session:
                if background:
                    await session.connection(execution_options={BACKGROUND: True})
                yield session
        except DBAPIError as exc:
            if (refusal := _refusal(exc)) is None:
                raise
            raise refusal from exc

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()
