"""Core statement helpers: a model's table, and statements whose spelling differs between
SQLite and PostgreSQL."""

from typing import Any

from sqlalchemy import Table, inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel


def core_table(model: type[SQLModel]) -> Table:
    """The Table behind a model, for Core statements (bulk inserts, upserts) that skip the
    ORM's per-row work. SQLModel sets `__table__` at class creation but does not declare it."""
    table = inspect(model).local_table
    assert isinstance(table, Table), f"{model.__name__} is not mapped to a single table"
    return table


def upsert_insert(session: AsyncSession, table: Table) -> Any:
    """An INSERT that supports on_conflict_do_nothing / on_conflict_do_update.

    Any: the two dialects' Insert classes offer the same on_conflict_* methods and
    `excluded` but share no base class that declares them."""
    dialect = session.get_bind().dialect.name
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"
