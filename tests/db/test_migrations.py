"""The Alembic migrations build exactly the schema the models describe."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Table, UniqueConstraint, inspect

from app.db.tables import metadata


async def test_migrated_database_matches_the_models(db):
    async with db.write_engine.connect() as conn:
        diff = await conn.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), metadata
            )
        )
    assert diff == []


def model_names(table: Table) -> dict[str, set[str | None]]:
    return {
        "pk": {table.primary_key.name},
        "uq": {c.name for c in table.constraints if isinstance(c, UniqueConstraint)},
        "fk": {c.name for c in table.foreign_key_constraints},
        "ix": {i.name for i in table.indexes},
    }


def database_names(sync: Connection, table: str) -> dict[str, set[str | None]]:
    db = inspect(sync)
    return {
        "pk": {db.get_pk_constraint(table)["name"]},
        "uq": {c["name"] for c in db.get_unique_constraints(table)},
        "fk": {c["name"] for c in db.get_foreign_keys(table)},
        # PostgreSQL lists a unique constraint's own index too.
        "ix": {i["name"] for i in db.get_indexes(table) if not i.get("duplicates_constraint")},
    }


def test_every_constraint_in_the_models_has_a_name():
    unnamed = [
        (table.name, kind)
        for table in metadata.sorted_tables
        for kind, names in model_names(table).items()
        if None in names
    ]
    assert unnamed == []


async def test_the_database_has_the_names_the_models_give(db):
    # given the migrated database's names (SQLite keeps none for constraints declared
    # without one, as the first migrations declared them; PostgreSQL named them itself)
    async with db.write_engine.connect() as conn:
        found = {
            table.name: await conn.run_sync(database_names, table.name)
            for table in metadata.sorted_tables
        }
    for table in metadata.sorted_tables:
        expected = model_names(table)
        for kind, names in found[table.name].items():
            if db.dialect == "postgresql" or kind == "ix":
                # then they are exactly the models' names
                assert names == expected[kind], (table.name, kind)
            else:
                assert names - {None} <= expected[kind], (table.name, kind)
