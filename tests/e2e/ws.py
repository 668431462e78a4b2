"""Minimal GraphQL-over-WebSocket clients (graphql-transport-ws and legacy graphql-ws)."""

import asyncio
import itertools
import json
from typing import Any

import websockets

from tests.e2e.conftest import auth_headers

TIMEOUT = 20.0


class Subscriber:
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
        self.url = url
        self.query = query
        self.variables = variables or {}
        self.legacy = legacy
        # The test's ADMIN token unless another is given; sent in connection_init.
        self.init = auth_headers(token)
        self.ws: Any = None
        self.id = str(next(_ids))

    async def __aenter__(self) -> "Subscriber":
        protocol = "graphql-ws" if self.legacy else "graphql-transport-ws"
        self.ws = await websockets.connect(self.url, subprotocols=[protocol], open_timeout=TIMEOUT)
        await self.ws.send(json.dumps({"type": "connection_init", "payload": self.init}))
        ack = await self._recv()
        assert ack["type"] == "connection_ack", ack
        kind = "start" if self.legacy else "subscribe"
        payload = {"query": self.query, "variables": self.variables}
        await self.ws.send(json.dumps({"id": self.id, "type": kind, "payload": payload}))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()

    async def _recv(self) -> dict[str, Any]:
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
            if message["type"] not in ("ka", "ping", "pong"):
                return message

    async def next(self) -> dict[str, Any]:
        """The next result's data; fails on an error or the end of the stream."""
        message = await self._recv()
        assert message["type"] in ("next", "data"), message
        assert not message["payload"].get("errors"), message
        return message["payload"]["data"]

    async def take(self, n: int) -> list[dict[str, Any]]:
        return [await self.next() for _ in range(n)]

    async def message(self) -> dict[str, Any]:
        """The next raw protocol message."""
        return await self._recv()


_ids = itertools.count(1)
