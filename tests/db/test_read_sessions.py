"""Under test, a read session refuses to write (tests/conftest.py makes the database enforce
it), so a resolver that writes through `db.read()` fails its test instead of passing."""

import pytest
from sqlalchemy import func, select, text, update

from app.tracking.models import Experiment


async def experiment_names(db) -> list[str]:
    async with db.read() as session:
        return list((await session.execute(select(Experiment.name))).scalars())


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(
            lambda session: session.execute(
                text(
                    "INSERT INTO experiment (name, tags, created_at) "
                    "VALUES ('written', '{}', CURRENT_TIMESTAMP)"
                )
            ),
            id="raw-insert",
        ),
        pytest.param(
            lambda session: session.execute(update(Experiment).values(name="written")),
            id="core-update",
        ),
        pytest.param(lambda session: orm_add(session), id="orm-flush"),
    ],
)
async def test_a_write_through_a_read_session_is_refused(db, write):
    # given a database with its default experiment
    assert await experiment_names(db) == ["Default"]

    # when a read session writes, then the write is refused
    with pytest.raises(Exception, match=r"(?i)read-?only|readonly|cannot be written") as info:
        async with db.read() as session:
            await write(session)
    assert not isinstance(info.value, AssertionError)

    # and nothing was written
    assert await experiment_names(db) == ["Default"]


async def orm_add(session) -> None:
    session.add(Experiment(name="written"))
    await session.flush()


async def test_a_read_session_still_reads_and_a_unit_of_work_still_writes(db):
    async with db.unit_of_work() as session:
        session.add(Experiment(name="written"))
    async with db.read() as session:
        count = (await session.execute(select(func.count()).select_from(Experiment))).scalar()
    assert count == 2
