"""Relay-style connections over the keyset pages the services return."""

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import strawberry

from app.db.pagination import Page, check_first

T = TypeVar("T")


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type(description="A page of a list: `nodes` is the shortcut for `edges { node }`.")
class Connection(Generic[T]):
    items: strawberry.Private[list[T]]
    page: strawberry.Private[Page[Any]]

    @strawberry.field
    def edges(self) -> list[Edge[T]]:
        # Cursors are encoded here, so a client reading only `nodes` never pays for them.
        return [Edge(cursor=self.page.cursor(i), node=n) for i, n in enumerate(self.items)]

    @strawberry.field
    def page_info(self) -> PageInfo:
        return PageInfo(has_next_page=self.page.has_next, end_cursor=self.page.end_cursor)

    @strawberry.field
    def nodes(self) -> list[T]:
        return self.items


def to_connection(page: Page[Any], convert: Callable[[Any], T]) -> Connection[T]:
    return Connection(items=[convert(item) for item in page.items], page=page)


__all__ = ["Connection", "Edge", "PageInfo", "check_first", "to_connection"]
