from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import DateTime, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from app.errors import ValidationError

T = TypeVar("T")


def stored(value: T | None) -> T:
    """A value the database assigns on INSERT (an autoincrement key), read from a row
    that has been flushed or loaded: the model declares it optional only for the time
    before the INSERT."""
    assert value is not None, "read before the row was flushed"
    return value


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """`value` in UTC; a naive datetime is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def check_datetime(field: str, value: datetime | None) -> datetime | None:
    """`value` in UTC, or a ValidationError naming `field` when it has no UTC equivalent."""
    if value is None:
        return None
    try:
        return as_utc(value)
    except OverflowError as exc:
        raise ValidationError(field, "is outside the range of UTC datetimes") from exc


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type:
        return datetime

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        # SQLite compares the stored text: keep one naive UTC format so order holds.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


E = TypeVar("E", bound=StrEnum)


class EnumText(TypeDecorator[E]):
    """A StrEnum stored as its text (a VARCHAR, so no database enum type to migrate) and
    read back as the enum member: code never re-wraps strings by hand."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[E], length: int = 16) -> None:
        super().__init__(length)
        self.enum = enum

    @property
    def python_type(self) -> type:
        return self.enum

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        # A plain string must still name a member: nothing else reaches the column.
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> E | None:
        return None if value is None else self.enum(value)
