"""Engine set-up: SQLite pragmas and BEGIN IMMEDIATE; PostgreSQL's constraints and ids."""

import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.util.concurrency import await_

from app.db import Database
from app.tracking import service as tracking_service
from app.tracking.models import Experiment


@pytest.fixture
async def sqlite_db(sqlite_template, tmp_path) -> AsyncIterator[Database]:
    """A SQLite database whichever backend the suite runs on."""
    path = tmp_path / "sqlite.db"
    shutil.copyfile(sqlite_template, path)
    database = Database(f"sqlite+aiosqlite:///{path}")
    yield database
    await database.dispose()


async def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(sqlite_db):
    for engine in (sqlite_db.read_engine, sqlite_db.write_engine):
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 30_000
            # FULL = 2: a commit is synced to disk before it is acknowledged
            assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar() == 2


def trace_sqlite(database: Database) -> list[str]:
    """Every statement SQLite itself runs on the database's connections from now on (the
    driver's own BEGIN and ROLLBACK included), in order."""
    seen: list[str] = []

    def trace(dbapi_connection: Any, _record: Any) -> None:
        worker = dbapi_connection._connection  # aiosqlite's: calls run on its thread
        await_(worker._execute(worker._conn.set_trace_callback, seen.append))

    for engine in (database.read_engine, database.write_engine):
        event.listen(engine.sync_engine, "connect", trace)
    return seen


async def test_sqlite_writes_begin_immediate_and_reads_begin_deferred(sqlite_db):
    seen = trace_sqlite(sqlite_db)
    async with sqlite_db.unit_of_work() as session:
        await session.execute(select(Experiment))
    writes = [s for s in seen if not s.startswith("PRAGMA")]
    assert writes[0] == "BEGIN IMMEDIATE"
    assert writes[1].startswith("SELECT")
    assert writes[-1] == "COMMIT"
    seen.clear()
    async with sqlite_db.read() as session:
        await session.execute(select(Experiment))
    reads = [s for s in seen if not s.startswith("PRAGMA")]
    assert reads[0] == "BEGIN"
    assert reads[1].startswith("SELECT")


async def test_sqlite_has_one_writer_connection(sqlite_db):
    assert sqlite_db.write_engine.pool.size() == 1
    assert sqlite_db.read_engine is not sqlite_db.write_engine


@pytest.mark.postgres
async def test_postgres_has_the_partial_unique_index_for_production(db):
    async with db.read() as session:
        definition = (
            await session.execute(
                text(
                    "SELECT indexdef FROM pg_indexes "
                    "WHERE indexname = 'uq_model_version_one_production'"
                )
            )
        ).scalar_one()
    assert "UNIQUE" in definition
    assert "WHERE" in definition
    assert "PRODUCTION" in definition


@pytest.mark.postgres
async def test_postgres_default_experiment_is_zero_and_new_ids_follow(db):
    async with db.unit_of_work() as session:
        created = await tracking_service.create_experiment(session, name="next", actor="test")
    assert created.id == 1
    async with db.read() as session:
        default = await session.get(Experiment, 0)
    assert default is not None
    assert default.name == "Default"
