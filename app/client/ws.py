"""GraphQL subscriptions over a WebSocket: graphql-transport-ws, and the legacy graphql-ws
protocol for the clients that still speak it."""

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, Self

import websockets
from websockets.asyncio.client import ClientConnection

from app.client.errors import ClientError, StreamClosed, StreamEnded, closed
from app.client.http import auth_headers, endpoint

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
# message type names: (subscribe, a result, the end), by protocol
_KINDS = {TRANSPORT_WS: ("subscribe", "next", "complete"), LEGACY_WS: ("start", "data", "complete")}
_ids = itertools.count(1)


def ws_endpoint(url: str) -> str:
    """The WebSocket URL of a server given by its HTTP(S) or WS(S) URL."""
    url = endpoint(url)
    for http, ws in (("http://", "ws://"), ("https://", "wss://")):
        if url.startswith(http):
            return ws + url.removeprefix(http)
    return url


class Subscription:
    """One connection carrying one subscription.

        async with Subscription(url, query, variables, token=secret) as stream:
            async for data in stream: ...

    The token goes in connection_init's payload (and in the upgrade request's headers when
    `token_in_headers`). `next()` answers the next result's data; a result with errors and
    an `error` message raise ClientError with the errors, the end of the stream StreamEnded,
    a closed socket the StreamClosed subclass its close code names. `timeout` bounds each
    wait for a message (None: wait for ever); `connect_options` go to websockets.connect
    (compression, max_queue, proxy...)."""

    def __init__(
        self,
        url: str,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        token: str | None = None,
        init_payload: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        token_in_headers: bool = False,
        protocol: str = TRANSPORT_WS,
        timeout: float | None = None,
        connect_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.url = ws_endpoint(url)
        self.query = query
        self.variables = dict(variables or {})
        self.init_payload = dict(init_payload if init_payload is not None else auth_headers(token))
        self.headers = {**(auth_headers(token) if token_in_headers else {}), **(headers or {})}
        self.protocol = protocol
        self.timeout = timeout
        self.connect_options = dict(connect_options or {})
        self.id = str(next(_ids))
        self._ws: ClientConnection | None = None

    @property
    def ws(self) -> ClientConnection:
        if self._ws is None:
            raise RuntimeError("the subscription is not open")
        return self._ws

    async def open(self) -> Self:
        """Connect, initialise (connection_ack) and subscribe."""
        try:
            self._ws = await websockets.connect(
                self.url,
                subprotocols=[websockets.Subprotocol(self.protocol)],
                additional_headers=self.headers,
                **{"open_timeout": self.timeout, **self.connect_options},
            )
        except websockets.InvalidStatus as exc:
            status = exc.response.status_code
            raise ClientError(
                f"{self.url} refused the WebSocket: HTTP {status}", status=status
            ) from exc
        await self._send({"type": "connection_init", "payload": self.init_payload})
        ack = await self.message()
        if ack["type"] != "connection_ack":
            await self.close()
            raise ClientError(f"connection_init was answered {ack}", errors=[ack])
        payload = {"query": self.query, "variables": self.variables}
        await self._send({"id": self.id, "type": _KINDS[self.protocol][0], "payload": payload})
        return self

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _send(self, message: Mapping[str, Any]) -> None:
        try:
            await self.ws.send(json.dumps(message))
        except websockets.ConnectionClosed as exc:
            raise _closed(exc) from exc

    async def message(self) -> dict[str, Any]:
        """The next protocol message, keep-alives answered and skipped."""
        while True:
            try:
                raw = await asyncio.wait_for(self.ws.recv(), self.timeout)
            except websockets.ConnectionClosed as exc:
                raise _closed(exc) from exc
            message: dict[str, Any] = json.loads(raw)
            if message.get("type") == "ping":
                await self._send({"type": "pong"})
            elif message.get("type") not in ("pong", "ka"):
                return message

    async def next(self) -> dict[str, Any]:
        """The next result's data."""
        message = await self.message()
        _, result, end = _KINDS[self.protocol]
        kind = message.get("type")
        if kind == result:
            payload = message.get("payload") or {}
            if payload.get("errors"):
                raise ClientError.from_errors(payload["errors"])
            data: dict[str, Any] = payload.get("data") or {}
            return data
        if kind == "error":
            errors = message.get("payload")
            raise ClientError.from_errors(errors if isinstance(errors, list) else [errors or {}])
        if kind == end:
            raise StreamEnded("the server completed the subscription")
        raise ClientError(f"unexpected message {message}", errors=[message])

    async def take(self, n: int) -> list[dict[str, Any]]:
        return [await self.next() for _ in range(n)]

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            try:
                yield await self.next()
            except StreamEnded:
                return


def _closed(exc: websockets.ConnectionClosed) -> StreamClosed:
    frame = exc.rcvd
    return closed(frame.code, frame.reason) if frame is not None else closed(None, "no close frame")
