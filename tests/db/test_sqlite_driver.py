"""The SQLite driver (app/db/sqlite_driver.py): one hand-off to the connection's thread
per statement, BEGIN run with the first statement, and transactions that keep their
meaning (one snapshot per read session, nothing sent for a transaction that ran nothing)."""

import shutil
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, func, select, text, update
from sqlalchemy.util.concurrency import await_

from app.db import Database
from app.db.sqlite_driver import _statement
from app.tracking import service as tracking_service
from app.tracking.models import Experiment


class CountingQueue:
    """Stands in front of an aiosqlite connection's job queue, counting what is put on it:
    jobs waited for (with a future) and jobs queued without waiting."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.waited = 0
        self.queued = 0

    def put_nowait(self, item: tuple[Any, Any]) -> None:
        if item[0] is None:
            self.queued += 1
        else:
            self.waited += 1
        self.queue.put_nowait(item)


@pytest.fixture
async def sqlite_db(sqlite_template, tmp_path) -> AsyncIterator[Database]:
    path = tmp_path / "sqlite.db"
    shutil.copyfile(sqlite_template, path)
    database = Database(f"sqlite+aiosqlite:///{path}", pool_size=1)
    yield database
    await database.dispose()


def instrument(database: Database) -> tuple[list[str], list[CountingQueue]]:
    """(statements SQLite runs, the job counters of every connection opened from now on)."""
    seen: list[str] = []
    queues: list[CountingQueue] = []

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        worker = dbapi_connection._connection
        await_(worker._execute(worker._conn.set_trace_callback, seen.append))
        worker._tx = counting = CountingQueue(worker._tx)
        queues.append(counting)

    for engine in (database.read_engine, database.write_engine):
        event.listen(engine.sync_engine, "connect", on_connect)
    return seen, queues


async def warm(database: Database) -> None:
    """Open each engine's connection (its PRAGMAs are hand-offs too)."""
    async with database.read() as session:
        await session.execute(text("SELECT 1"))
    async with database.unit_of_work() as session:
        await session.execute(text("SELECT 1"))


def _counts(queues: list[CountingQueue]) -> tuple[int, int]:
    return sum(q.waited for q in queues), sum(q.queued for q in queues)


async def test_a_read_of_one_statement_waits_for_one_hand_off(sqlite_db):
    seen, queues = instrument(sqlite_db)
    await warm(sqlite_db)
    before = _counts(queues)
    seen.clear()
    async with sqlite_db.read() as session:
        await tracking_service.get_experiment(session, name="Default")
    waited, queued = (a - b for a, b in zip(_counts(queues), before, strict=True))
    await sqlite_db.read_engine.dispose()  # the queued rollback has run before the close
    assert seen[0] == "BEGIN"
    assert seen[-1] == "ROLLBACK"
    # (the suite's read sessions also run PRAGMA query_only: tests/conftest.py)
    statements = seen[1:-1]
    assert statements[-1].startswith("SELECT")
    # Each statement is waited for, the first with its BEGIN; the rollback that ends the
    # read is queued behind them without waiting.
    assert waited == len(statements)
    assert queued == 1


async def test_a_write_is_one_hand_off_per_statement_and_its_commit(sqlite_db):
    seen, queues = instrument(sqlite_db)
    await warm(sqlite_db)
    before = _counts(queues)
    seen.clear()
    async with sqlite_db.unit_of_work() as session:
        await tracking_service.create_experiment(session, name="counted", actor="test")
    waited, queued = (a - b for a, b in zip(_counts(queues), before, strict=True))
    statements = [s for s in seen if s not in ("BEGIN IMMEDIATE", "COMMIT")]
    # Each statement one hand-off, BEGIN IMMEDIATE inside the first; then the commit, and
    # no rollback after it.
    assert waited == len(statements) + 1
    assert queued == 0
    assert seen[0] == "BEGIN IMMEDIATE"
    assert seen[-1] == "COMMIT"
    assert "ROLLBACK" not in seen


async def test_a_transaction_that_ran_nothing_sends_nothing(sqlite_db):
    seen, queues = instrument(sqlite_db)
    await warm(sqlite_db)
    before = _counts(queues)
    seen.clear()
    async with sqlite_db.unit_of_work():
        pass
    async with sqlite_db.read():
        pass
    assert _counts(queues) == before
    assert seen == []


async def test_a_read_session_keeps_one_snapshot(sqlite_db):
    count = select(func.count()).select_from(Experiment)
    async with sqlite_db.read() as session:
        first = (await session.execute(count)).scalar_one()
        async with sqlite_db.unit_of_work() as writer:
            await tracking_service.create_experiment(writer, name="meanwhile", actor="test")
        assert (await session.execute(count)).scalar_one() == first
    async with sqlite_db.read() as session:
        assert (await session.execute(count)).scalar_one() == first + 1


async def test_rowcount_and_a_failed_statement_leave_the_connection_usable(sqlite_db):
    async with sqlite_db.unit_of_work() as session:
        await tracking_service.create_experiment(session, name="a", actor="test")
    async with sqlite_db.unit_of_work() as session:
        result = await session.execute(
            update(Experiment).where(Experiment.name == "a").values(description="d")
        )
        assert result.rowcount == 1  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="no such table"):
        async with sqlite_db.unit_of_work() as session:
            await session.execute(text("SELECT * FROM missing"))
    with pytest.raises(Exception, match="no such table"):
        async with sqlite_db.read() as session:
            await session.execute(text("SELECT * FROM missing"))
    # The one writer connection and the one reader were rolled back and serve again.
    async with sqlite_db.unit_of_work() as session:
        await tracking_service.create_experiment(session, name="b", actor="test")
    async with sqlite_db.read() as session:
        assert await tracking_service.get_experiment(session, name="b") is not None


def test_a_transaction_left_open_is_ended_before_the_next_begin(tmp_path):
    # A quiet rollback that failed leaves its read transaction open; the connection's next
    # BEGIN must not fail with "cannot start a transaction within a transaction".
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("BEGIN")
    conn.execute("SELECT * FROM t").fetchall()
    assert conn.in_transaction
    _description, rows, _count, _rowid, in_transaction = _statement(
        conn, "BEGIN", False, "SELECT 1", None
    )
    assert rows == [(1,)]
    assert in_transaction
    conn.close()
