"""The event bus says "there is news up to seq N"; events themselves come from the table.

In one process the unit of work advances the head after each commit. With PostgreSQL
every replica also LISTENs: a commit anywhere NOTIFYs its seq, so subscribers on every
replica wake. A periodic look at max(seq) covers what no notification announced (a
dropped LISTEN connection, a write by another process on SQLite).

One pump per process reads each new stretch of the table once and keeps the latest
events in a window, so a thousand live watchers cost one query per commit, not a
thousand. A watcher whose cursor is older than the window reads the table itself.
"""

import asyncio
import bisect
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from app.db import Database
from app.db.types import stored
from app.events.models import Event
from app.events.service import CHANNEL, last_seq, list_events

log = logging.getLogger("modelgraph.events")

PUMP_BATCH = 5_000
SHARED_LOADER_SECONDS = 1.0


class BusClosed(Exception):
    """The server is shutting down; subscribers should end cleanly."""


class EventBus:
    def __init__(self, *, refresh_seconds: float = 5.0, window: int = 2_000) -> None:
        self._head = 0  # highest seq known committed
        self._loaded = 0  # the window holds every lifecycle event in (floor, loaded]
        self._floor = 0
        self._window: list[Event] = []
        self._window_seqs: list[int] = []
        self._window_size = window
        self._head_changed = asyncio.Event()
        self._loaded_changed = asyncio.Event()
        self._closed = False
        self._refresh = refresh_seconds
        self._db: Database | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # Loaders shared by every subscription for one window and at most a second: the
        # thousand watchers of one event resolve its version with one query.
        self._shared_loaders: dict[str, Any] = {}
        self._shared_since = 0.0
        # Other channels this process listens on (PostgreSQL), and who hears them.
        self._listeners: dict[str, Callable[[str], None]] = {}

    @property
    def head(self) -> int:
        """The highest seq known committed: every event up to it can be read."""
        return self._head

    @property
    def loaded(self) -> int:
        """The highest seq whose events are in the window."""
        return self._loaded

    def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        """Hear `channel`'s notifications from every process (PostgreSQL; on SQLite there
        are none). Register before start()."""
        self._listeners[channel] = callback

    def advance(self, seq: int | None) -> None:
        if seq is None or seq <= self._head:
            return
        self._head = seq
        self._head_changed.set()

    def recent(
        self, cursor: int, *, model: str | None, types: Sequence[str] | None
    ) -> list[Event] | None:
        """Matching events in (cursor, loaded] from the window; None if the cursor is
        older than the window (read the table instead)."""
        if cursor < self._floor:
            return None
        start = bisect.bisect_right(self._window_seqs, cursor)
        return [
            e
            for e in self._window[start:]
            if (model is None or e.model == model) and (not types or e.type in types)
        ]

    def shared_loaders(self) -> dict[str, Any]:
        now = asyncio.get_running_loop().time()
        if now - self._shared_since > SHARED_LOADER_SECONDS:
            self._shared_loaders, self._shared_since = {}, now
        return self._shared_loaders

    async def wait_loaded_beyond(self, cursor: int) -> None:
        """Wait until the window reaches past `cursor`. BusClosed at shutdown."""
        while self._loaded <= cursor:
            if self._closed:
                raise BusClosed
            changed = self._loaded_changed
            await changed.wait()

    async def start(self, db: Database) -> None:
        self._db = db
        await self._catch_up()
        self._floor = self._loaded = self._head
        self._tasks = [
            asyncio.create_task(self._pump()),
            asyncio.create_task(self._supervise()),
        ]

    async def _pump(self) -> None:
        assert self._db is not None
        while not self._closed:
            if self._loaded >= self._head:
                self._head_changed.clear()
                await self._head_changed.wait()
                continue
            upto = self._head
            try:
                async with self._db.read(background=True) as session:
                    rows = await list_events(
                        session, after=self._loaded, upto=upto, limit=PUMP_BATCH
                    )
            except Exception:  # a failed read is retried at the next news or catch-up
                log.warning("event bus: reading new events failed", exc_info=True)
                await asyncio.sleep(1)
                continue
            if len(rows) == PUMP_BATCH:
                upto = stored(rows[-1].seq)
            self._extend(rows, upto)

    def _extend(self, rows: list[Event], upto: int) -> None:
        self._window.extend(rows)
        self._window_seqs.extend(stored(e.seq) for e in rows)
        if len(self._window) > 2 * self._window_size:
            cut = len(self._window) - self._window_size
            self._floor = self._window_seqs[cut - 1]
            del self._window[:cut], self._window_seqs[:cut]
        self._loaded = upto
        self._shared_loaders = {}
        changed, self._loaded_changed = self._loaded_changed, asyncio.Event()
        changed.set()

    async def _catch_up(self) -> None:
        assert self._db is not None
        try:
            await self._connect()
            async with self._db.read(background=True) as session:
                self.advance(await last_seq(session))
        except Exception:  # an unreachable database: the next round retries
            log.warning("event bus: catch-up failed; retrying in %ss", self._refresh, exc_info=True)

    async def _connect(self) -> None:
        """Open what the bus listens on, if anything (PostgreSQL)."""

    async def notify(self, channel: str, payload: str) -> None:
        """Tell every process listening on `channel` (PostgreSQL; nothing elsewhere)."""

    async def _supervise(self) -> None:
        while not self._closed:
            await asyncio.sleep(self._refresh)
            await self._catch_up()

    async def close(self) -> None:
        self._closed = True
        self._head_changed.set()
        self._loaded_changed.set()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class PostgresEventBus(EventBus):
    """EventBus plus one LISTEN connection per process (not through a transaction pooler)."""

    def __init__(self, url: str, *, refresh_seconds: float = 5.0) -> None:
        super().__init__(refresh_seconds=refresh_seconds)
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn: Any = None
        # One operation at a time on the LISTEN connection: (re)connecting, or a notify.
        self._conn_lock = asyncio.Lock()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        with contextlib.suppress(ValueError):
            self.advance(int(payload))

    async def _connect(self) -> None:
        async with self._conn_lock:
            if self._conn is not None and not self._conn.is_closed():
                return
            self._conn = await asyncpg.connect(self._dsn)
            await self._conn.add_listener(CHANNEL, self._on_notify)
            for channel, callback in self._listeners.items():
                await self._conn.add_listener(channel, _payload_only(callback))

    async def notify(self, channel: str, payload: str) -> None:
        """NOTIFY on the LISTEN connection, in a transaction of its own (so it takes
        PostgreSQL's notify lock only for itself, never inside a caller's commit)."""
        if self._conn is None or self._conn.is_closed():
            await self._connect()
        async with self._conn_lock:
            await self._conn.execute("SELECT pg_notify($1, $2)", channel, payload)

    async def close(self) -> None:
        await super().close()
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()


def _payload_only(callback: Callable[[str], None]) -> Callable[..., None]:
    def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            callback(payload)
        except Exception:  # a listener's failure must not break the LISTEN connection
            log.exception("notification listener on %s failed", _channel)

    return on_notify


def create_bus(db: Database) -> EventBus:
    if db.dialect == "postgresql":
        return PostgresEventBus(db.url.render_as_string(hide_password=False))
    return EventBus()
