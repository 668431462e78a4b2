"""Keyset pagination: a cursor is the encoded sort key of the last row a client saw."""

import base64
import binascii
import json
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import BigInteger, ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.db.types import as_utc
from app.errors import ValidationError

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class SortKey:
    column: Any
    descending: bool = False

    @property
    def python_type(self) -> type:
        return self.column.type.python_type

    @property
    def int_bits(self) -> int:
        return 64 if isinstance(self.column.type, BigInteger) else 32


@dataclass
class Page(Generic[T]):
    items: list[T]
    has_next: bool
    # The fetched rows; a row's sort key values are row[key_start:]. Cursors are
    # encoded from them only when a client asks for one.
    rows: Sequence[Any] = ()
    key_start: int = 0
    # Where the next page starts when that is past the last item (a filtered stream
    # scanned further than it matched); None: after the last item.
    end_key: Sequence[Any] | None = None

    def cursor(self, index: int) -> str:
        return encode_cursor(self.rows[index][self.key_start :])

    @property
    def end_cursor(self) -> str | None:
        if self.end_key is not None:
            return encode_cursor(self.end_key)
        return self.cursor(len(self.items) - 1) if self.items else None


def encode_cursor(values: Sequence[Any]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def _decode_value(value: Any, key: SortKey) -> Any:
    expected = key.python_type
    if isinstance(value, bool):
        raise TypeError("booleans are not sort keys")
    if expected is int and isinstance(value, int):
        limit = 2 ** (key.int_bits - 1)
        if not -limit <= value < limit:
            raise ValueError(f"{value} is out of range")
        return value
    if expected is datetime and isinstance(value, str):
        return as_utc(datetime.fromisoformat(value))
    if expected is float and isinstance(value, (int, float)):
        return float(value)
    if expected is not float and isinstance(value, expected):
        return value
    raise TypeError(f"{value!r} is not a {expected.__name__}")


def decode_cursor(cursor: str, keys: Sequence[SortKey], *, field: str = "after") -> list[Any]:
    """The sort key values inside `cursor`, each of its column's type, or a ValidationError."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(keys):
            raise ValueError("wrong shape")
        return [_decode_value(v, k) for k, v in zip(keys, values, strict=True)]
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationError(field, "is not a cursor this list gave out") from exc


def after_condition(keys: Sequence[SortKey], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows strictly after `values` in the order given by `keys` (no NULL sort keys)."""
    clauses = []
    for i, key in enumerate(keys):
        equal = [keys[j].column == values[j] for j in range(i)]
        beyond = key.column < values[i] if key.descending else key.column > values[i]
        clauses.append(and_(*equal, beyond))
    return or_(*clauses)


def order_by(keys: Sequence[SortKey]) -> list[Any]:
    return [k.column.desc() if k.descending else k.column.asc() for k in keys]


def check_first(first: int | None, *, default: int, cap: int, field: str = "first") -> int:
    """The page size to use, or a ValidationError naming the cap."""
    if first is None:
        return default
    if first < 0:
        raise ValidationError(field, "must not be negative", cap)
    if first > cap:
        raise ValidationError(field, f"is {first}, the limit is {cap}", cap)
    return first


def make_page(rows: Sequence[Any], first: int, *, item: int | None, key_start: int) -> Page[Any]:
    """Cut the `first + 1` rows fetched into a page: the item is row[item] (or the whole
    row when None) and the sort key values are row[key_start:]."""
    kept = rows[:first]
    items = list(kept) if item is None else [row[item] for row in kept]
    return Page(items=items, has_next=len(rows) > first, rows=kept, key_start=key_start)


async def fetch_page(
    session: AsyncSession,
    entity: Any | None,
    stmt: Select[*tuple[Any, ...]],
    keys: Sequence[SortKey],
    *,
    first: int,
    after: str | None,
) -> Page[Any]:
    """One page of `stmt` in `keys` order: one indexed statement. A select of one entity
    pages that entity; a select of columns pages the rows themselves."""
    width = len(stmt.column_descriptions)
    whole_row = not (width == 1 and entity is not None)
    stmt = stmt.add_columns(*(k.column for k in keys))
    if after is not None:
        stmt = stmt.where(after_condition(keys, decode_cursor(after, keys)))
    rows = (await session.execute(stmt.order_by(*order_by(keys)).limit(first + 1))).all()
    return make_page(rows, first, item=None if whole_row else 0, key_start=width)


async def fetch_pages_per_parent(
    session: AsyncSession,
    entity: Any,
    stmt: Select[*tuple[Any, ...]],
    keys: Sequence[SortKey],
    *,
    parent: Any,
    parent_ids: Sequence[K],
    first: int,
    after: str | None,
) -> dict[K, Page[Any]]:
    """The same page for each parent in one statement: rows ranked within each parent
    (a window function), so a list of parents costs one query, not one per parent."""
    conditions = [parent.in_(parent_ids)]
    if after is not None:
        conditions.append(after_condition(keys, decode_cursor(after, keys)))
    rank = func.row_number().over(partition_by=parent, order_by=order_by(keys))
    labelled = [k.column.label(f"k{i}") for i, k in enumerate(keys)]
    inner = (
        stmt.add_columns(*labelled, parent.label("parent"), rank.label("rank"))
        .where(*conditions)
        .subquery()
    )
    row_entity = aliased(entity, inner)
    key_columns = [inner.c[f"k{i}"] for i in range(len(keys))]
    outer = (
        select(row_entity, inner.c.parent, *key_columns)
        .where(inner.c.rank <= first + 1)
        .order_by(inner.c.parent, inner.c.rank)
    )
    grouped: dict[K, list[Any]] = {pid: [] for pid in parent_ids}
    for row in (await session.execute(outer)).all():
        grouped[row[1]].append(row)
    return {pid: make_page(rows, first, item=0, key_start=2) for pid, rows in grouped.items()}
