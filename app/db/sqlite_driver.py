"""aiosqlite as SQLAlchemy drives it, with one hand-off to the connection's thread per
statement instead of about four.

aiosqlite runs each call on the connection's own thread, and each call is a hand-off:
a queue put, a thread wake-up, a future resolved through the event loop (~60 µs of CPU
across both threads here). SQLAlchemy's adapter makes four of them per statement
(create a cursor, execute, fetch all, close the cursor) and three more for the `BEGIN`
our begin hook emits, so one indexed SELECT in a read session cost eight hand-offs
(docs/BENCHMARKS.md, "read path"). Here:

- a statement is one job on the thread: create the cursor, execute, fetch every row,
  close the cursor, and hand back the rows, description, rowcount and lastrowid;
- `BEGIN` (or `BEGIN IMMEDIATE`) waits for the first statement of the transaction and
  runs in the same job (`defer_begin`), so it costs no hand-off of its own; a transaction
  that ran no statement needs no rollback at all;
- the rollback that returns a connection to the pool is skipped when the connection is
  not in a transaction (after a commit, or a read that never ran a statement), and on a
  read connection (`quiet_rollback`) it is queued without waiting: the connection's next
  job, whoever checks it out, runs after it on the same thread, and a read transaction
  that could not be ended is ended before the next `BEGIN` on that connection.

Transactions keep their meaning: a read session's statements share one snapshot, a write
transaction still starts with `BEGIN IMMEDIATE` before its first statement.
"""

import collections
import logging
import sqlite3
from functools import partial
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    AsyncAdapt_aiosqlite_ss_cursor,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

log = logging.getLogger("modelgraph.db")

Outcome = tuple[Any, list[Any], int, int | None, bool]


def _statement(
    conn: sqlite3.Connection, begin: str | None, many: bool, operation: str, parameters: Any
) -> Outcome:
    """One statement on the connection's thread: (description, rows, rowcount, lastrowid,
    in_transaction). A transaction left open by a rollback that failed unseen is ended
    before a new one begins."""
    if begin is not None:
        if conn.in_transaction:
            conn.rollback()
        conn.execute(begin)
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid, conn.in_transaction
    finally:
        cursor.close()


def _begin(conn: sqlite3.Connection, begin: str) -> None:
    if conn.in_transaction:
        conn.rollback()
    conn.execute(begin)


def _rollback_quietly(conn: sqlite3.Connection) -> None:
    try:
        conn.rollback()
    except sqlite3.Error:  # the next BEGIN on this connection ends it (see _statement)
        log.warning("could not end a read transaction", exc_info=True)


class Cursor(AsyncAdapt_aiosqlite_cursor):
    """A DBAPI cursor whose execute is one job on the connection's thread and whose rows
    are all in memory after it (as SQLAlchemy's adapter has them too)."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")
    _adapt_connection: "Connection"

    def __init__(self, adapt_connection: Any) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    def _run(self, many: bool, operation: Any, parameters: Any) -> Any:
        adapt = self._adapt_connection
        begin, adapt.pending_begin = adapt.pending_begin, None
        try:
            outcome: Outcome = await_(
                self._connection._execute(
                    _statement, self._connection._conn, begin, many, operation, parameters
                )
            )
        except Exception as error:
            adapt.in_transaction = True  # unknown: the rollback must run
            adapt._handle_exception(error)
        self._description, rows, self._rowcount, self._lastrowid, adapt.in_transaction = outcome
        self._rows = collections.deque(rows)

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        return self._run(False, operation, parameters)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        return self._run(True, operation, seq_of_parameters)

    async def _async_soft_close(self) -> None:
        """Nothing to close: the sqlite3 cursor closed on the thread."""

    def close(self) -> None:
        self._rows.clear()


class ServerSideCursor(AsyncAdapt_aiosqlite_ss_cursor):
    """aiosqlite's streaming cursor, after the deferred BEGIN has run."""

    __slots__ = ()
    _adapt_connection: "Connection"

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._adapt_connection.begin_now()
        return await super()._execute_async(operation, parameters)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        await self._adapt_connection.begin_now()
        return await super()._executemany_async(operation, seq_of_parameters)


class Connection(AsyncAdapt_aiosqlite_connection):
    """The adapted connection: knows whether it is in a transaction, holds a BEGIN until
    the first statement, and may end read transactions without waiting."""

    __slots__ = ("in_transaction", "pending_begin", "quiet_rollback")
    _cursor_cls = Cursor
    _ss_cursor_cls = ServerSideCursor

    def __init__(self, dbapi: Any, connection: Any, *, quiet_rollback: bool = False) -> None:
        super().__init__(dbapi, connection)
        self.pending_begin: str | None = None
        self.in_transaction = False
        self.quiet_rollback = quiet_rollback

    def defer_begin(self, begin: str) -> None:
        """Begin a transaction with `begin`, run with the next statement."""
        self.pending_begin = begin

    async def begin_now(self) -> None:
        begin, self.pending_begin = self.pending_begin, None
        if begin is not None:
            self.in_transaction = True
            await self._connection._execute(_begin, self._connection._conn, begin)

    def rollback(self) -> None:
        self.pending_begin = None
        if not self.in_transaction or not self._connection._connection:
            return
        self.in_transaction = False
        if self.quiet_rollback:
            conn = self._connection._conn
            self._connection._tx.put_nowait((None, partial(_rollback_quietly, conn)))
            return
        super().rollback()

    def commit(self) -> None:
        self.pending_begin = None
        if not self.in_transaction:
            return
        self.in_transaction = False
        super().commit()


class DBAPI(AsyncAdapt_aiosqlite_dbapi):
    """What `create_async_engine(..., module=DBAPI(...))` takes: aiosqlite, adapted as above.
    `quiet_rollback` for an engine that only reads."""

    def __init__(self, *, quiet_rollback: bool = False) -> None:
        super().__init__(aiosqlite, sqlite3)
        self.quiet_rollback = quiet_rollback

    def connect(self, *arg: Any, **kw: Any) -> Connection:
        adapted = super().connect(*arg, **kw)
        return Connection(self, adapted._connection, quiet_rollback=self.quiet_rollback)
