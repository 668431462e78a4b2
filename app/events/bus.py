"""The event bus says only "there is news up to seq N"; subscribers read the rows.

In one process the unit of work advances the head after each commit. With PostgreSQL
every replica also LISTENs: a commit anywhere NOTIFYs its seq, so subscribers on every
replica wake. A periodic look at max(seq) covers what no notification announced (a
dropped LISTEN connection, a write by another process on SQLite).
"""

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from app.db import Database
from app.events.service import CHANNEL, last_seq

log = logging.getLogger("modelgraph.events")


class BusClosed(Exception):
    """The server is shutting down; subscribers should end cleanly."""


class EventBus:
    def __init__(self, *, refresh_seconds: float = 5.0) -> None:
        self._head = 0
        self._changed = asyncio.Event()
        self._closed = False
        self._refresh = refresh_seconds
        self._db: Database | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def head(self) -> int:
        """The highest seq known committed: every event up to it can be read."""
        return self._head

    def advance(self, seq: int | None) -> None:
        if seq is None or seq <= self._head:
            return
        self._head = seq
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_beyond(self, cursor: int) -> int:
        """Wait until the head passes `cursor`; returns the head. BusClosed at shutdown."""
        while self._head <= cursor:
            if self._closed:
                raise BusClosed
            await self._changed.wait()
        return self._head

    async def start(self, db: Database) -> None:
        self._db = db
        await self._catch_up()
        self._task = asyncio.create_task(self._supervise())

    async def _catch_up(self) -> None:
        assert self._db is not None
        try:
            await self._connect()
            async with self._db.read() as session:
                self.advance(await last_seq(session))
        except Exception:  # an unreachable database: the next round retries
            log.warning("event bus: catch-up failed; retrying in %ss", self._refresh, exc_info=True)

    async def _connect(self) -> None:
        """Open what the bus listens on, if anything (PostgreSQL)."""

    async def _supervise(self) -> None:
        while not self._closed:
            await asyncio.sleep(self._refresh)
            await self._catch_up()

    async def close(self) -> None:
        self._closed = True
        self._changed.set()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class PostgresEventBus(EventBus):
    """EventBus plus one LISTEN connection per process (not through a transaction pooler)."""

    def __init__(self, url: str, *, refresh_seconds: float = 5.0) -> None:
        super().__init__(refresh_seconds=refresh_seconds)
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn: Any = None

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        with contextlib.suppress(ValueError):
            self.advance(int(payload))

    async def _connect(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            return
        self._conn = await asyncpg.connect(self._dsn)
        await self._conn.add_listener(CHANNEL, self._on_notify)

    async def close(self) -> None:
        await super().close()
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()


def create_bus(db: Database) -> EventBus:
    if db.dialect == "postgresql":
        return PostgresEventBus(db.url.render_as_string(hide_password=False))
    return EventBus()
