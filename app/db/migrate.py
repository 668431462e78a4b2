"""Alembic, driven from code: `modelgraph db upgrade` and the serve start-up call these."""

from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would eat a '%' in a password.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _in_thread(fn: Any, *args: Any, **kwargs: Any) -> None:
    # env.py runs its own event loop, which cannot nest in a caller's running loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(fn, *args, **kwargs).result()


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` up to `revision`."""
    _in_thread(command.upgrade, alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Revert the database at `url` to `revision`."""
    _in_thread(command.downgrade, alembic_config(url), revision)


def current(url: str) -> None:
    """Print the revision the database at `url` is at."""
    _in_thread(command.current, alembic_config(url), verbose=True)


def revision(url: str, message: str) -> None:
    """Write a new migration from the difference between the models and the database at `url`."""
    _in_thread(command.revision, alembic_config(url), message=message, autogenerate=True)


@cache
def head_revision() -> str | None:
    """The newest migration this code ships (read once: the files ship with the code)."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


async def current_revision(session: AsyncSession) -> str | None:
    """The migration the database is at (None: never migrated)."""
    try:
        return (await session.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    except DBAPIError:
        return None
