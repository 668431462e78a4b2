"""Caps on what clients may hold open in this process: WebSocket connections and
subscriptions, per token (principal name) and in total. One per app; every claim is given
back in a `finally`, so the counts are exact however a connection or subscription ends."""

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from app.config import Settings
from app.errors import DomainError, ErrorCode


class TooManySubscriptions(DomainError):
    code = ErrorCode.TOO_MANY_SUBSCRIPTIONS

    def __init__(self, message: str, *, limit: int, setting: str) -> None:
        super().__init__(f"{message} ({setting}={limit})", limit=limit, setting=setting)
        self.limit = limit
        self.setting = setting


class TooManyConnections(DomainError):
    code = ErrorCode.TOO_MANY_CONNECTIONS

    def __init__(self, message: str, *, limit: int, setting: str) -> None:
        super().__init__(f"{message} ({setting}={limit})", limit=limit, setting=setting)
        self.limit = limit
        self.setting = setting


class Admission:
    """Counts open WebSocket connections and subscriptions and refuses beyond the caps."""

    def __init__(
        self,
        *,
        connections: int,
        connections_per_token: int,
        subscriptions: int,
        subscriptions_per_token: int,
        refused: Callable[[str], None] = lambda limit: None,
    ) -> None:
        self.connection_limit = connections
        self.connection_limit_per_token = connections_per_token
        self.subscription_limit = subscriptions
        self.subscription_limit_per_token = subscriptions_per_token
        self._refused = refused
        self.connections = 0
        self.subscriptions = 0
        self.connections_by_token: Counter[str] = Counter()
        self.subscriptions_by_token: Counter[str] = Counter()

    @classmethod
    def of(cls, settings: Settings, refused: Callable[[str], None]) -> "Admission":
        return cls(
            connections=settings.max_websocket_connections,
            connections_per_token=settings.max_websocket_connections_per_token,
            subscriptions=settings.max_subscriptions,
            subscriptions_per_token=settings.max_subscriptions_per_token,
            refused=refused,
        )

    def open_connection(self) -> None:
        """Count a new socket, authenticated or not; TooManyConnections beyond the total."""
        if self.connections >= self.connection_limit:
            self._refused("max_websocket_connections")
            raise TooManyConnections(
                "the server holds as many WebSocket connections as it allows; try again later",
                limit=self.connection_limit,
                setting="MODELGRAPH_MAX_WEBSOCKET_CONNECTIONS",
            )
        self.connections += 1

    def close_connection(self, *, token: str | None) -> None:
        """Give back a socket's place, and its token's if it was authenticated."""
        self.connections -= 1
        if token is not None:
            _decrement(self.connections_by_token, token)

    def authenticate_connection(self, token: str) -> None:
        """Count an authenticated socket against its token."""
        if self.connections_by_token[token] >= self.connection_limit_per_token:
            self._refused("max_websocket_connections_per_token")
            raise TooManyConnections(
                "this token holds as many WebSocket connections as it may",
                limit=self.connection_limit_per_token,
                setting="MODELGRAPH_MAX_WEBSOCKET_CONNECTIONS_PER_TOKEN",
            )
        self.connections_by_token[token] += 1

    @contextmanager
    def subscription(self, token: str) -> Iterator[None]:
        """Hold one subscription of `token` while the block runs."""
        if self.subscriptions_by_token[token] >= self.subscription_limit_per_token:
            self._refused("max_subscriptions_per_token")
            raise TooManySubscriptions(
                "this token has as many subscriptions open as it may; end one first",
                limit=self.subscription_limit_per_token,
                setting="MODELGRAPH_MAX_SUBSCRIPTIONS_PER_TOKEN",
            )
        if self.subscriptions >= self.subscription_limit:
            self._refused("max_subscriptions")
            raise TooManySubscriptions(
                "the server has as many subscriptions open as it allows; try again later",
                limit=self.subscription_limit,
                setting="MODELGRAPH_MAX_SUBSCRIPTIONS",
            )
        self.subscriptions += 1
        self.subscriptions_by_token[token] += 1
        try:
            yield
        finally:
            self.subscriptions -= 1
            _decrement(self.subscriptions_by_token, token)


def _decrement(counts: Counter[str], key: str) -> None:
    # Tokens come and go: a name with nothing open is forgotten, so the map stays small.
    counts[key] -= 1
    if counts[key] <= 0:
        del counts[key]
