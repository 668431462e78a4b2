"""Statements whose spelling differs between SQLite and PostgreSQL."""

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def upsert_insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT that supports on_conflict_do_nothing / on_conflict_do_update."""
    dialect = session.bind.dialect.name
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


def is_postgres(session: AsyncSession) -> bool:
    return bool(session.bind.dialect.name == "postgresql")
