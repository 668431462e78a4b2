"""Key/value pairs: how params and tags travel in both directions."""

from collections.abc import Iterable, Mapping
from typing import Protocol, TypeVar

import strawberry

from app.errors import ValidationError
from app.graphql.limits import charged

V = TypeVar("V", covariant=True)


@strawberry.type(description="A param or tag.")
class KeyValue:
    key: str
    value: str


@strawberry.input(description="A param or tag to set.")
class KeyValueInput:
    key: str
    value: str


class Pair(Protocol[V]):
    key: str
    value: V


def to_dict(field: str, pairs: Iterable[Pair[V]] | None) -> dict[str, V]:
    """The pairs as a dict; a key given twice is refused rather than silently dropped."""
    out: dict[str, V] = {}
    for pair in pairs or ():
        if pair.key in out:
            raise ValidationError(field, f"key {pair.key!r} is given more than once")
        out[pair.key] = pair.value
    return out


def from_items(items: Iterable[tuple[str, str]] | Mapping[str, str]) -> list[KeyValue]:
    pairs = items.items() if isinstance(items, Mapping) else items
    return charged([KeyValue(key=k, value=v) for k, v in sorted(pairs)])
