"""The tests' subscription client: app.client.Subscription with the test's ADMIN token and
a bound on every wait. Tests that send malformed frames use websockets directly."""

from typing import Any

from app.client import LEGACY_WS, TRANSPORT_WS, Subscription
from tests.e2e.conftest import Auth

TIMEOUT = 20.0


class Subscriber(Subscription):
    """One connection, one subscription (graphql-transport-ws unless legacy=True)."""

    def __init__(
        self,
        url: str,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        legacy: bool = False,
        token: str | None = None,
    ) -> None:
        super().__init__(
            url,
            query,
            variables,
            token=token or Auth.token,
            protocol=LEGACY_WS if legacy else TRANSPORT_WS,
            timeout=TIMEOUT,
        )
