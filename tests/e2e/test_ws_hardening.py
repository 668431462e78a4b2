"""A hostile or broken client against a real server: malformed protocol frames, sockets
that never authenticate, slow headers, and more connections or subscriptions than allowed.
Each gets the protocol's error or close code, is counted in /metrics, and leaves no
traceback in the server's log."""

import asyncio
import json
import socket
import time
from typing import Any

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from app.auth.roles import Role
from tests.conftest import make_token
from tests.e2e.conftest import Server, auth_headers, gql
from tests.e2e.ws import TIMEOUT

WATCH = 'subscription { lifecycleEvents(model: "m") { type } }'
REGISTER = 'mutation { registerModelVersion(input: {model: "m"}) { __typename } }'
REVOKE = "mutation($name: String!) { revokeApiToken(input: {name: $name}) { __typename } }"
LEGACY, TRANSPORT = "graphql-ws", "graphql-transport-ws"


def metric(server: Server, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels`."""
    text = httpx.get(f"{server.base}/metrics", timeout=TIMEOUT).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


async def until(check: Any) -> None:
    """Wait (polling, bounded) for `check()` to hold."""
    deadline = time.monotonic() + TIMEOUT
    while not check():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.05)


def stopped_cleanly(server: Server) -> None:
    output = server.stop()  # also insists there is no traceback
    assert "Exception in ASGI application" not in output, output
    assert "Exception in worker task" not in output, output


async def connect(server: Server, protocol: str, token: str | None = None) -> Any:
    """An authenticated connection (connection_init answered by connection_ack)."""
    ws = await websockets.connect(server.ws, subprotocols=[protocol], open_timeout=TIMEOUT)
    await ws.send(json.dumps({"type": "connection_init", "payload": auth_headers(token)}))
    ack = await recv(ws)
    assert ack["type"] == "connection_ack", ack
    return ws


async def recv(ws: Any) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if message["type"] not in ("ka", "ping", "pong"):
            return message


async def closed(ws: Any) -> tuple[int, str]:
    """Read until the server closes the socket: its close code and reason."""

    async def read_until_closed() -> None:
        while True:
            await asyncio.wait_for(ws.recv(), TIMEOUT)

    with pytest.raises(websockets.ConnectionClosed) as info:
        await read_until_closed()
    assert info.value.rcvd is not None, "the socket was dropped without a close frame"
    return info.value.rcvd.code, info.value.rcvd.reason


# graphql-ws (legacy): a malformed message gets an `error` message (with the id when it
# had a usable one) and the connection stays open, as subscriptions-transport-ws does.
LEGACY_MALFORMED = [
    ("start without payload", {"type": "start", "id": "1"}, "1"),
    ("start with payload null", {"type": "start", "id": "2", "payload": None}, "2"),
    ("start without id", {"type": "start", "payload": {"query": WATCH}}, None),
    ("start without query", {"type": "start", "id": "4", "payload": {}}, "4"),
    ("start with query 5", {"type": "start", "id": "5", "payload": {"query": 5}}, "5"),
    (
        "start with variables a list",
        {"type": "start", "id": "6", "payload": {"query": WATCH, "variables": [1]}},
        "6",
    ),
    ("a message without type", {"id": "7", "payload": {"query": WATCH}}, "7"),
    ("a message whose type is unknown", {"type": "begin", "id": "8"}, "8"),
    ("stop without id", {"type": "stop"}, None),
]


async def test_malformed_legacy_messages_get_an_error_and_the_connection_goes_on(start_server):
    server = start_server()
    ws = await connect(server, LEGACY)
    for case, frame, expected_id in LEGACY_MALFORMED:
        await ws.send(json.dumps(frame))
        answer = await recv(ws)
        assert answer["type"] == "error", (case, answer)
        assert answer.get("id") == expected_id, (case, answer)
        assert answer["payload"]["extensions"]["code"] == "INVALID_MESSAGE", (case, answer)
    # the connection still serves a well-formed subscription
    await ws.send(json.dumps({"type": "start", "id": "ok", "payload": {"query": WATCH}}))
    await until(lambda: metric(server, "modelgraph_subscriptions") == 1)
    gql(server.base, REGISTER)
    data = await recv(ws)
    assert data["type"] == "data", data
    assert data["id"] == "ok", data
    assert data["payload"]["data"]["lifecycleEvents"]["type"] == "MODEL_CREATED"
    await ws.close()
    errors = metric(server, "modelgraph_websocket_protocol_errors_total", protocol=LEGACY)
    assert errors == len(LEGACY_MALFORMED)
    stopped_cleanly(server)


# graphql-transport-ws: any invalid message closes the socket with 4400.
TRANSPORT_MALFORMED = [
    ("subscribe whose payload is a string", {"type": "subscribe", "id": "1", "payload": "x"}),
    ("subscribe whose payload is null", {"type": "subscribe", "id": "1", "payload": None}),
    ("subscribe without payload", {"type": "subscribe", "id": "1"}),
    ("subscribe without query", {"type": "subscribe", "id": "1", "payload": {}}),
    ("subscribe with query 5", {"type": "subscribe", "id": "1", "payload": {"query": 5}}),
    ("subscribe without id", {"type": "subscribe", "payload": {"query": WATCH}}),
    ("subscribe with a list as id", {"type": "subscribe", "id": [1], "payload": {"query": WATCH}}),
    (
        "subscribe with variables a string",
        {"type": "subscribe", "id": "1", "payload": {"query": WATCH, "variables": "x"}},
    ),
    ("complete with a list as id", {"type": "complete", "id": [1]}),
    ("a message without type", {"id": "1", "payload": {"query": WATCH}}),
]


async def test_malformed_transport_messages_close_the_socket_with_4400(start_server):
    server = start_server()
    for case, frame in TRANSPORT_MALFORMED:
        ws = await connect(server, TRANSPORT)
        await ws.send(json.dumps(frame))
        code, reason = await closed(ws)
        assert code == 4400, (case, code, reason)
        assert reason.startswith("Invalid message"), (case, reason)
    errors = metric(server, "modelgraph_websocket_protocol_errors_total", protocol=TRANSPORT)
    assert errors == len(TRANSPORT_MALFORMED)
    stopped_cleanly(server)


async def test_connection_init_with_payload_null_is_accepted(start_server):
    # the protocol makes the payload optional; null is "no payload", as on the legacy side
    server = start_server()
    async with websockets.connect(server.ws, subprotocols=[TRANSPORT]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": None}))
        assert (await closed(ws))[0] == 4401  # no token: unauthenticated, not malformed
    stopped_cleanly(server)


@pytest.mark.parametrize("protocol", [LEGACY, TRANSPORT])
async def test_a_socket_that_never_authenticates_is_closed_4408(start_server, protocol):
    server = start_server(MODELGRAPH_CONNECTION_INIT_TIMEOUT_SECONDS="0.5")
    # given one socket that authenticates and one that never sends connection_init
    live = await connect(server, protocol)
    async with websockets.connect(server.ws, subprotocols=[protocol]) as idle:
        # then the idle one is closed 4408
        code, reason = await closed(idle)
    assert (code, reason) == (4408, "Connection initialisation timeout")
    assert metric(server, "modelgraph_websocket_init_timeouts_total", protocol=protocol) == 1
    # and the authenticated one, older than the timeout by now, still serves
    await asyncio.sleep(1)
    kind = "start" if protocol == LEGACY else "subscribe"
    await live.send(json.dumps({"type": kind, "id": "w", "payload": {"query": WATCH}}))
    await until(lambda: metric(server, "modelgraph_subscriptions") == 1)
    gql(server.base, REGISTER)
    assert (await recv(live))["payload"]["data"]["lifecycleEvents"]["type"] == "MODEL_CREATED"
    await live.close()
    stopped_cleanly(server)


def test_a_client_trickling_its_request_headers_is_disconnected(start_server):
    server = start_server(MODELGRAPH_HTTP_HEADER_TIMEOUT_SECONDS="0.5")
    # given a client that sends a request line a byte at a time, never finishing its headers
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        raw.settimeout(0.2)
        deadline = time.monotonic() + TIMEOUT
        answer = None
        while time.monotonic() < deadline:
            try:
                raw.sendall(b"X")
                answer = raw.recv(1024)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                answer = b""
            break
    # then the server closes the connection without answering
    assert answer == b"", answer
    # and a client that sends nothing at all is disconnected too
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as raw:
        assert raw.recv(1024) == b""
    # while a normal request is answered
    assert httpx.get(f"{server.base}/healthz", timeout=TIMEOUT).status_code == 200
    stopped_cleanly(server)


def test_connections_beyond_the_server_cap_are_answered_503(start_server):
    server = start_server(MODELGRAPH_MAX_CONNECTIONS="3")
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
    try:
        response = httpx.get(f"{server.base}/healthz", timeout=TIMEOUT)
        assert response.status_code == 503
    finally:
        for raw in held:
            raw.close()
    deadline = time.monotonic() + TIMEOUT
    while httpx.get(f"{server.base}/healthz", timeout=TIMEOUT).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stopped_cleanly(server)


async def subscribe(ws: Any, op_id: str, protocol: str = TRANSPORT) -> None:
    kind = "start" if protocol == LEGACY else "subscribe"
    await ws.send(json.dumps({"type": kind, "id": op_id, "payload": {"query": WATCH}}))


async def refusal(ws: Any, op_id: str) -> dict[str, Any]:
    """The error a refused subscription gets (then it completes)."""
    message = await recv(ws)
    assert message.get("id") == op_id, message
    payload = message["payload"]
    errors = payload if isinstance(payload, list) else payload["errors"]
    return errors[0]


async def test_subscriptions_are_capped_per_token_and_in_total(start_server, database_url):
    reader = await make_token(database_url, "watcher", Role.READER)
    server = start_server(
        MODELGRAPH_MAX_SUBSCRIPTIONS_PER_TOKEN="2", MODELGRAPH_MAX_SUBSCRIPTIONS="3"
    )

    def open_subscriptions() -> float:
        return metric(server, "modelgraph_subscriptions")

    # given a READER with two subscriptions on one connection
    first = await connect(server, TRANSPORT, reader)
    await subscribe(first, "a")
    await subscribe(first, "b")
    await until(lambda: open_subscriptions() == 2)

    # when it asks for a third, on this connection or another, it is refused by name
    await subscribe(first, "c")
    error = await refusal(first, "c")
    assert error["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS", error
    assert error["extensions"]["limit"] == 2
    assert "MODELGRAPH_MAX_SUBSCRIPTIONS_PER_TOKEN=" in error["message"]
    second = await connect(server, LEGACY, reader)
    await subscribe(second, "d", LEGACY)
    assert (await refusal(second, "d"))["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"

    # then another token may still subscribe, up to the server's total
    admin = await connect(server, TRANSPORT)
    await subscribe(admin, "e")
    await until(lambda: open_subscriptions() == 3)
    await subscribe(admin, "f")
    error = await refusal(admin, "f")
    assert error["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS", error
    assert error["extensions"]["limit"] == 3
    assert "MODELGRAPH_MAX_SUBSCRIPTIONS=" in error["message"]

    # a completed subscription frees its place at once
    await first.send(json.dumps({"type": "complete", "id": "a"}))
    await until(lambda: open_subscriptions() == 2)
    await subscribe(second, "g", LEGACY)
    await until(lambda: open_subscriptions() == 3)

    # a dropped socket frees all of its subscriptions
    await first.close()
    await until(lambda: open_subscriptions() == 2)
    await subscribe(admin, "h")
    await until(lambda: open_subscriptions() == 3)

    # a revocation ends the token's subscriptions and frees their places
    assert gql(server.base, REVOKE, name="watcher")["revokeApiToken"]["__typename"]
    await closed(second)
    await until(lambda: open_subscriptions() == 2)
    other = await connect(server, TRANSPORT, await make_token(database_url, "other", Role.READER))
    await subscribe(other, "i")
    await until(lambda: open_subscriptions() == 3)
    await other.close()
    await admin.close()
    await until(lambda: open_subscriptions() == 0)
    refused = metric(server, "modelgraph_limit_refusals_total")
    assert refused == 3
    stopped_cleanly(server)


async def test_websocket_connections_are_capped_per_token_and_in_total(start_server, database_url):
    reader = await make_token(database_url, "watcher", Role.READER)
    server = start_server(
        MODELGRAPH_MAX_WEBSOCKET_CONNECTIONS_PER_TOKEN="2", MODELGRAPH_MAX_WEBSOCKET_CONNECTIONS="3"
    )
    held = [await connect(server, TRANSPORT, reader), await connect(server, LEGACY, reader)]

    # a third connection of the same token is refused 4429, naming the limit
    async with websockets.connect(server.ws, subprotocols=[TRANSPORT]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": auth_headers(reader)}))
        code, reason = await closed(ws)
    assert code == 4429
    assert "MODELGRAPH_MAX_WEBSOCKET_CONNECTIONS_PER_TOKEN=2" in reason
    async with websockets.connect(server.ws, subprotocols=[LEGACY]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": auth_headers(reader)}))
        refused = await recv(ws)
        assert refused["type"] == "connection_error", refused
        assert refused["payload"]["code"] == "TOO_MANY_CONNECTIONS"
        assert (await closed(ws))[0] == 4429

    # another token may connect, up to the server's total; beyond it: 1013, even unauthenticated
    held.append(await connect(server, TRANSPORT))
    async with websockets.connect(server.ws, subprotocols=[TRANSPORT]) as ws:
        code, reason = await closed(ws)
    assert code == 1013
    assert "MODELGRAPH_MAX_WEBSOCKET_CONNECTIONS=3" in reason

    # a closed connection frees its place, for the token and in total
    await held.pop(0).close()
    await until(lambda: metric(server, "modelgraph_websocket_connections") == 2)
    held.append(await connect(server, TRANSPORT, reader))
    for ws in held:
        await ws.close()
    await until(lambda: metric(server, "modelgraph_websocket_connections") == 0)
    assert metric(server, "modelgraph_limit_refusals_total") == 3
    stopped_cleanly(server)
