"""Per-request context: the database (never a shared session), settings, loaders, and who
is asking (the principal, whose name is the actor of every change it makes)."""

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, ExitStack, contextmanager
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from app.auth.errors import AuthenticationError, PermissionDeniedError
from app.auth.roles import Principal, Role
from app.config import Settings
from app.db import Database
from app.db.pagination import check_first
from app.events.bus import EventBus
from app.events.live import MetricFeed
from app.graphql.admission import Admission

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def batch_loader(
    db: Database,
    fetch: Callable[[AsyncSession, list[Any]], Awaitable[dict[Any, Any]]],
    default: Callable[[], Any] = lambda: None,
) -> DataLoader[Any, Any]:
    """A DataLoader whose each batch is one short read session and one `fetch` call."""

    async def load(keys: Sequence[Any]) -> list[Any]:
        async with db.read() as session:
            found = await fetch(session, list(keys))
        return [found[k] if k in found else default() for k in keys]

    return DataLoader(load_fn=load)


class Context:
    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        bus: EventBus | None = None,
        feed: MetricFeed | None = None,
        request: Any = None,
        cache_loaders: bool = True,
        principal: Principal | None = None,
        request_id: str | None = None,
        metrics: Any = None,
        admission: Admission | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.bus = bus
        self.feed = feed
        self.request = request
        # None on a WebSocket until connection_init has been authenticated.
        self.principal = principal
        self.request_id = request_id
        self.metrics = metrics
        self.admission = admission
        # WebSocket only: connection_init's payload, the protocol handler (to close it on
        # revocation), the undo of the revocation watch, and the caps it is counted against.
        self.connection_params: dict[str, Any] | None = None
        self.connection: Any = None
        self.unwatch: Callable[[], None] | None = None
        # The token name this connection is counted under, once authenticated.
        self.admitted_as: str | None = None
        # Loaders are built on first use, once per request, keyed by name. A WebSocket
        # context lives as long as the connection, so there each use gets a fresh loader:
        # a connection-long cache would serve a version's stage as it was events ago.
        self._cache_loaders = cache_loaders
        self._loaders: dict[str, DataLoader[Any, Any]] = {}

    @property
    def actor(self) -> str:
        """The name every change made by this request records."""
        assert self.principal is not None
        return self.principal.actor

    def authorize(self, operation: str, role: Role) -> None:
        """Refuse unless the principal may act with `role`: PermissionDeniedError (a typed
        refusal), or AuthenticationError when its token has been revoked meanwhile."""
        self.check_active()
        assert self.principal is not None
        if not self.principal.role.includes(role):
            if self.metrics is not None:
                self.metrics.permission_denied.inc()
            raise PermissionDeniedError(operation, role, self.principal.role)

    @contextmanager
    def subscription(self, field: str) -> Iterator[None]:
        """Counts the subscription as open (the /metrics gauge, and against its token's
        and the server's caps: TooManySubscriptions beyond them) while the block runs."""
        with ExitStack() as held:
            if self.admission is not None:
                assert self.principal is not None
                held.enter_context(self.admission.subscription(self.principal.name))
            gauge = self.metrics.subscriptions.labels(field) if self.metrics is not None else None
            if gauge is not None:
                gauge.inc()
                held.callback(gauge.dec)
            yield

    def delivered(self, field: str) -> None:
        if self.metrics is not None:
            self.metrics.events_delivered.labels(field).inc()

    def check_active(self) -> None:
        """For long-lived operations (subscriptions): stop once the token is revoked."""
        if self.principal is None or self.principal.revoked:
            raise AuthenticationError("the token has been revoked; authenticate again")

    def unit_of_work(self) -> AbstractAsyncContextManager[AsyncSession]:
        return self.db.unit_of_work()

    def read(self) -> AbstractAsyncContextManager[AsyncSession]:
        return self.db.read()

    def loader(
        self,
        name: str,
        fetch: Callable[[AsyncSession, list[Any]], Awaitable[dict[Any, Any]]],
        default: Callable[[], Any] = lambda: None,
    ) -> DataLoader[Any, Any]:
        """The request's loader called `name`, made from `fetch` the first time it is asked for."""
        if not self._cache_loaders:
            return batch_loader(self.db, fetch, default)
        loader = self._loaders.get(name)
        if loader is None:
            loader = self._loaders[name] = batch_loader(self.db, fetch, default)
        return loader

    async def load_shared(
        self,
        name: str,
        fetch: Callable[[AsyncSession, list[Any]], Awaitable[dict[Any, Any]]],
        key: Any,
    ) -> Any:
        """Load through a loader shared by every subscriber of the process for one event
        window (at most a second), so a thousand watchers of one event make one query.
        Shielded: a watcher that disconnects mid-load cancels only its own wait."""
        if self._cache_loaders or self.bus is None:
            return await self.loader(name, fetch).load(key)
        store = self.bus.shared_loaders()
        loader = store.get(name)
        if loader is None:
            loader = store[name] = batch_loader(self.db, fetch)
        return await asyncio.shield(loader.load(key))

    def grouped_loader(
        self,
        name: str,
        fetch: Callable[..., Awaitable[dict[Any, Any]]],
        default: Callable[[], Any] = lambda: None,
    ) -> DataLoader[Any, Any]:
        """A loader keyed by (parent id, *args): parents that share args are fetched
        together by `fetch(session, parent_ids, *args)`, one statement per argument set;
        a key `fetch` finds nothing for gets `default()`."""

        async def load(session: AsyncSession, keys: list[tuple[Any, ...]]) -> dict[Any, Any]:
            groups: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
            for parent_id, *args in keys:
                groups[tuple(args)].append(parent_id)
            found: dict[Any, Any] = {}
            for shared, parent_ids in groups.items():
                for parent_id, value in (await fetch(session, parent_ids, *shared)).items():
                    found[(parent_id, *shared)] = value
            return found

        return self.loader(name, load, default)

    def page_size(self, first: int | None) -> int:
        return check_first(
            first, default=self.settings.default_page_size, cap=self.settings.max_page_size
        )

    def history_page_size(self, first: int | None) -> int:
        cap = self.settings.max_history_page_size
        return check_first(first, default=cap, cap=cap)


Ctx = Info[Context, None]
