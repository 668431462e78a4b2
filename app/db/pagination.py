"""Keyset pagination: a cursor is the encoded sort key of the last row a client saw."""

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, and_, or_

from app.errors import ValidationError

T = TypeVar("T")


@dataclass(frozen=True)
class SortKey:
    column: Any
    descending: bool = False
    # Values of this column travel in cursors as ISO strings.
    is_datetime: bool = False


@dataclass
class Page(Generic[T]):
    items: list[T]
    cursors: list[str]
    has_next: bool


def encode_cursor(values: Sequence[Any]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, keys: Sequence[SortKey], *, field: str = "after") -> list[Any]:
    """The sort key values inside `cursor`, or a ValidationError naming `field`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(keys):
            raise ValueError("wrong shape")
        decoded = []
        for key, value in zip(keys, values, strict=True):
            if key.is_datetime:
                value = datetime.fromisoformat(value)
            elif not isinstance(value, (int, float, str)) or isinstance(value, bool):
                raise ValueError("wrong type")
            decoded.append(value)
        return decoded
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
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


def make_page(rows: Sequence[Any], first: int, keys_of: Any) -> "Page[Any]":
    """Cut the `first + 1` rows fetched into a page; `keys_of(row)` gives (item, key values)."""
    has_next = len(rows) > first
    items, cursors = [], []
    for row in rows[:first]:
        item, key_values = keys_of(row)
        items.append(item)
        cursors.append(encode_cursor(key_values))
    return Page(items=items, cursors=cursors, has_next=has_next)
