"""Engines and units of work for SQLite (the embedded default) and PostgreSQL."""

import asyncio
import logging
import shutil
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.config import Settings
from app.db import sqlite_driver
from app.errors import ConflictError, UnavailableError, ValidationError

BACKGROUND = "modelgraph_background"
# In session.info of every `Database.read()` session: the test suite makes the database
# refuse writes from such sessions, so a write that slipped into a read path fails there.
READ_ONLY = "modelgraph_read_only"
log = logging.getLogger("modelgraph.db")
T = TypeVar("T")


# PostgreSQL SQLSTATEs that are the client's input or a retryable race, not bugs.
_RETRYABLE = {"40P01", "40001"}  # deadlock detected, serialization failure
_BAD_INPUT_CLASS = "22"  # data exception: a NUL byte, a number out of range, ...


# The server's condition, not the request's: connection failures (08), insufficient
# resources such as a full disk (53), an administrator's shutdown or a server starting
# (57P01-57P03), system I/O errors (58).
_UNAVAILABLE_CLASSES = ("08", "53", "58")
_UNAVAILABLE_STATES = {"57P01", "57P02", "57P03"}
# SQLite result codes (primary, as sqlite3 names them) of the same kind: the disk is
# full or failing, the file cannot be opened or written, the write lock outlasted the
# busy timeout.
_SQLITE_UNAVAILABLE = (
    "SQLITE_FULL",
    "SQLITE_IOERR",
    "SQLITE_CANTOPEN",
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_READONLY",
    "SQLITE_NOMEM",
)
_SQLITE_WORDS = {
    "database or disk is full": "the database's disk is full",
    "disk i/o error": "the database's disk failed",
    "unable to open database": "the database cannot be opened",
    "database is locked": "the database is busy",
    "readonly database": "the database cannot be written",
    "out of memory": "the database is out of memory",
}


def _unavailable(exc: BaseException) -> UnavailableError | None:
    """An UnavailableError when `exc` is the database's condition (down, full, locked);
    else None."""
    if isinstance(exc, PoolTimeout):
        return UnavailableError("no database connection is free")
    if isinstance(exc, OSError):  # the connection itself: refused, reset, timed out
        return UnavailableError("the database cannot be reached")
    if not isinstance(exc, DBAPIError):
        return None
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state and (state[:2] in _UNAVAILABLE_CLASSES or state in _UNAVAILABLE_STATES):
        return UnavailableError(
            "the database's disk is full" if state == "53100" else "the database is unavailable"
        )
    # sqlite3 names its error (3.11+); the words serve a driver that does not.
    name = getattr(orig, "sqlite_errorname", None)
    message = str(orig).lower()
    reason = next((r for words, r in _SQLITE_WORDS.items() if words in message), None)
    if name is not None and name.startswith(_SQLITE_UNAVAILABLE):
        return UnavailableError(reason or "the database is unavailable")
    if name is None and not state and reason is not None:
        return UnavailableError(reason)
    if exc.connection_invalidated or isinstance(getattr(orig, "__cause__", None), OSError):
        return UnavailableError("the database connection was lost")
    return None


def _refusal(exc: BaseException) -> Exception | None:
    """A typed refusal for database errors the client caused or may retry, or that are
    the database's condition; else None (a bug)."""
    if isinstance(exc, IntegrityError):
        return ConflictError(
            "input", "a concurrent change conflicts with this one; read again and retry"
        )
    if (unavailable := _unavailable(exc)) is not None:
        # The driver's words, not the statement (a batch's parameters can be megabytes).
        cause = exc.orig if isinstance(exc, DBAPIError) else exc
        log.warning("database unavailable: %s: %s", cause.__class__.__name__, cause)
        return unavailable
    if not isinstance(exc, DBAPIError):
        return None
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if state in _RETRYABLE:
        return ConflictError("input", "a concurrent change conflicts with this one; retry")
    if state and state.startswith(_BAD_INPUT_CLASS):
        return ValidationError("input", "contains a value the database cannot store")
    return None


async def to_the_end(work: Awaitable[T]) -> T:
    """Await `work` to its end even if the caller is cancelled meanwhile, and deliver the
    cancellation after. A cancellation that reached the driver mid-statement or
    mid-commit left SQLite's write lock held, or a PostgreSQL backend inside a
    transaction, with the connection in a state no one knew."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done():  # the work itself was cancelled (the loop is closing)
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return result


class _Session(AsyncSession):
    """An AsyncSession whose database calls run to their end whatever happens to the
    task that awaits them (see `to_the_end`); a cancelled caller still stops at the
    next call."""

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await to_the_end(super().execute(*args, **kwargs))

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        return await to_the_end(super().scalar(*args, **kwargs))

    async def scalars(self, *args: Any, **kwargs: Any) -> Any:
        return await to_the_end(super().scalars(*args, **kwargs))

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        return await to_the_end(super().get(*args, **kwargs))

    async def get_one(self, *args: Any, **kwargs: Any) -> Any:
        return await to_the_end(super().get_one(*args, **kwargs))

    async def flush(self, *args: Any, **kwargs: Any) -> None:
        await to_the_end(super().flush(*args, **kwargs))

    async def refresh(self, *args: Any, **kwargs: Any) -> None:
        await to_the_end(super().refresh(*args, **kwargs))

    async def delete(self, *args: Any, **kwargs: Any) -> None:
        await to_the_end(super().delete(*args, **kwargs))

    async def merge(self, *args: Any, **kwargs: Any) -> Any:
        return await to_the_end(super().merge(*args, **kwargs))

    async def run_sync(self, *args: Any, **kwargs: Any) -> Any:
        return await to_the_end(super().run_sync(*args, **kwargs))

    async def connection(self, *args: Any, **kwargs: Any) -> Any:
        return await to_the_end(super().connection(*args, **kwargs))

    async def commit(self) -> None:
        await to_the_end(super().commit())

    async def rollback(self) -> None:
        await to_the_end(super().rollback())

    async def close(self) -> None:
        await to_the_end(super().close())


def _sqlite_engine(
    url: str, *, busy_timeout_ms: int, writer: bool, pool_size: int, synchronous: str
) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0 if writer else 5,
        pool_timeout=max(busy_timeout_ms / 1000, 30),
        # One hand-off to the connection's thread per statement (app/db/sqlite_driver.py).
        module=sqlite_driver.DBAPI(quiet_rollback=not writer),
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
    # fails with "database is locked"; IMMEDIATE takes the lock up front
    # (docs/ARCHITECTURE.md, "SQLite and PostgreSQL").
    begin = "BEGIN IMMEDIATE" if writer else "BEGIN"

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Run with the transaction's first statement, in the same hand-off.
        connection.connection.dbapi_connection.defer_begin(begin)

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
            # pool instead of in busy_timeout cuts the tail latency (docs/ARCHITECTURE.md).
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
        self._writes = async_sessionmaker(
            self.write_engine, class_=_Session, expire_on_commit=False
        )
        # Called with session.info after each commit (the event bus listens here).
        self.after_commit: list[Callable[[dict[str, Any]], None]] = []
        self._reads = async_sessionmaker(self.read_engine, class_=_Session, expire_on_commit=False)

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

        Once begun it ends in a commit or a rollback and gives its connection back, even
        if the caller is cancelled (a client that goes away loses only the answer). A
        constraint a concurrent writer got to first (a unique name, the single
        PRODUCTION slot) is a ConflictError the client can retry; a database that is
        down, full or locked an UnavailableError; neither is a 500.
        """
        session = self._writes()
        try:
            try:
                yield session
                # The hooks run with the commit, so a caller cancelled meanwhile cannot
                # leave a committed change untold to the bus.
                await to_the_end(self._commit(session))
            finally:
                await session.close()  # rolls back whatever did not commit
        except Exception as exc:
            if (refusal := _refusal(exc)) is None:
                raise
            raise refusal from exc

    async def _commit(self, session: AsyncSession) -> None:
        await AsyncSession.commit(session)
        self._run_after_commit(session.info)

    @asynccontextmanager
    async def read(self, *, background: bool = False) -> AsyncIterator[AsyncSession]:
        """A short read session for one resolver or one loader batch. `background` marks
        reads that are not the request's own (the event pump, token lookups), so
        per-request counts can skip them."""
        session = self._reads()
        session.info[READ_ONLY] = True
        try:
            try:
                if background:
                    await session.connection(execution_options={BACKGROUND: True})
                yield session
            finally:
                await session.close()
        except Exception as exc:
            if (refusal := _refusal(exc)) is None:
                raise
            raise refusal from exc

    async def writer_problem(self, *, timeout_s: float, min_free_bytes: int) -> str | None:
        """Why a write could not be made now, or None: SQLite's write lock cannot be had
        within `timeout_s` or its disk has less than `min_free_bytes` free; PostgreSQL
        gives no connection within `timeout_s` or is read-only. Nothing is written."""
        if self.dialect == "sqlite":
            return await asyncio.to_thread(self._sqlite_writer_problem, timeout_s, min_free_bytes)
        try:
            async with asyncio.timeout(timeout_s):
                conn = await self.write_engine.connect()
        except (TimeoutError, OSError, DBAPIError):
            return "writer unavailable"
        try:
            async with conn.begin():
                ms = max(int(timeout_s * 1000), 1)
                await conn.execute(text(f"SET LOCAL statement_timeout = {ms}"))
                read_only = (await conn.execute(text("SHOW transaction_read_only"))).scalar()
        except DBAPIError:
            return "writer unavailable"
        finally:
            await to_the_end(conn.close())
        return "read-only" if read_only == "on" else None

    def _sqlite_writer_problem(self, timeout_s: float, min_free_bytes: int) -> str | None:
        path = self.url.database
        if not path or path == ":memory:":
            return None
        # A connection of its own, not the pool's: the pool's one writer may be busy
        # with a long batch, and a lock held by anything shows here as a wait.
        try:
            conn = sqlite3.connect(path, timeout=timeout_s, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
            finally:
                conn.close()
        except sqlite3.Error:
            return "writer unavailable"
        # A rolled-back write reveals nothing of a full disk; the free space does.
        if shutil.disk_usage(Path(path).resolve().parent).free < min_free_bytes:
            return "disk full"
        return None

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()
