"""Authentication over the real transports: HTTP bearer tokens, WebSocket connection_init,
revocation reaching open subscriptions, the first start's ADMIN token, dev mode."""

import asyncio
import json
import os

import httpx
import pytest
import websockets

from app.auth.roles import Role
from app.client import AsyncClient, Client, StreamClosed, Subscription
from tests.conftest import ADMIN, make_token
from tests.e2e.conftest import Server, auth_headers, cli, gql
from tests.e2e.ws import TIMEOUT, Subscriber

WATCH = 'subscription { lifecycleEvents(model: "m") { type actor } }'
REGISTER = 'mutation { registerModelVersion(input: {model: "m"}) { __typename } }'
REVOKE = """
mutation($name: String!) {
  revokeApiToken(input: {name: $name}) { __typename ... on RevokeApiTokenSuccess { token { revokedAt } } }
}
"""


async def closed_with(url: str, payload: dict) -> tuple:
    """Open a graphql-transport-ws connection, send connection_init, return the close."""
    subscription = Subscription(url, WATCH, init_payload=payload, timeout=TIMEOUT)
    with pytest.raises(StreamClosed) as closed:
        await subscription.open()
    await subscription.close()
    return closed.value.close_code, closed.value.reason


async def as_token(server: Server, secret: str) -> httpx.Response:
    """`{ viewer { name } }` over HTTP with `secret` as the bearer token: the raw answer."""
    async with AsyncClient(server.base, token=secret) as client:
        return await client.post("{ viewer { name } }")


async def close_code_after_no_data(watcher: Subscriber) -> int:
    """Read until the server closes; no event may arrive (an error saying the token was
    revoked may). The close code."""
    while True:
        try:
            message = await watcher.message()
        except StreamClosed as closed:
            return closed.close_code or 0
        assert not (message.get("payload") or {}).get("data"), message


async def test_a_websocket_without_a_token_is_closed_4401_and_a_bad_one_4403(start_server):
    server = start_server()
    assert (await closed_with(server.ws, {}))[0] == 4401
    code, reason = await closed_with(server.ws, {"Authorization": "Bearer mg_made-up"})
    assert code == 4403
    assert "not valid" in reason
    assert (await closed_with(server.ws, {"token": 42}))[0] == 4403
    # JSON can carry a lone surrogate, which no text encoding takes: still just not valid.
    code, reason = await closed_with(server.ws, {"Authorization": "Bearer mg_\ud800"})
    assert code == 4403
    assert "not valid" in reason


async def test_a_legacy_graphql_ws_client_without_a_token_gets_a_connection_error(start_server):
    server = start_server()
    async with websockets.connect(server.ws, subprotocols=["graphql-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        refused = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert refused["type"] == "connection_error"
        assert refused["payload"]["code"] == "UNAUTHENTICATED"
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)


async def test_a_token_in_the_upgrade_header_or_the_payload_both_work(start_server, database_url):
    reader = await make_token(database_url, "watcher", Role.READER)
    server = start_server()
    for headers, token in (({"Authorization": f"Bearer {reader}"}, ""), ({}, reader)):
        async with websockets.connect(
            server.ws, subprotocols=["graphql-transport-ws"], additional_headers=headers
        ) as ws:
            payload = {"token": token} if token else {}
            await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"


async def test_a_revoked_token_stops_its_open_subscription_at_once(start_server, database_url):
    # given a watcher with a READER token, live on the stream
    reader = await make_token(database_url, "watcher", Role.READER)
    server = start_server()
    async with Subscriber(server.ws, WATCH, token=reader) as watcher:
        gql(server.base, REGISTER)
        assert (await watcher.next())["lifecycleEvents"]["type"] == "MODEL_CREATED"
        await watcher.take(1)  # VERSION_REGISTERED

        # when an admin revokes the token through the server
        revoked = gql(server.base, REVOKE, name="watcher")
        assert revoked["revokeApiToken"]["__typename"] == "RevokeApiTokenSuccess"
        gql(server.base, REGISTER)

        # then the connection is closed 4403 and no event after the revocation arrives
        code = await close_code_after_no_data(watcher)
    assert code == 4403
    # and the token no longer works over HTTP either
    response = await as_token(server, reader)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_revocation_from_the_cli_reaches_the_running_server(
    start_server, database_url, server_env
):
    # given a watcher live on a server, and the CLI run as another process on the database;
    # the server's own periodic re-check is made too slow to matter: NOTIFY (PostgreSQL) or
    # the revocation mark (SQLite) must do it
    reader = await make_token(database_url, "watcher", Role.READER)
    server = start_server(MODELGRAPH_TOKEN_RECHECK_SECONDS="3600")
    async with Subscriber(server.ws, WATCH, token=reader) as watcher:
        gql(server.base, REGISTER)
        assert (await watcher.next())["lifecycleEvents"]["type"] == "MODEL_CREATED"
        await watcher.take(1)  # VERSION_REGISTERED
        result = cli("token", "revoke", "--name", "watcher", env=server_env)
        assert result.returncode == 0, result.stderr

        # then the server closes the connection, with no HTTP request to prompt it
        assert await close_code_after_no_data(watcher) == 4403
    # and has forgotten the token for HTTP too
    assert (await as_token(server, reader)).status_code == 401


async def test_the_first_request_after_a_cli_revocation_returns_is_refused(
    start_server, database_url, server_env
):
    # given a server that would trust a token it has seen for an hour
    server = start_server(MODELGRAPH_TOKEN_RECHECK_SECONDS="3600")
    for i in range(20):
        name = f"ci-{i}"
        secret = await make_token(database_url, name, Role.READER)
        assert (await as_token(server, secret)).status_code == 200  # now remembered

        # when the CLI revokes it in another process and returns
        result = cli("token", "revoke", "--name", name, env=server_env)
        assert result.returncode == 0, result.stderr

        # then the very next request with it is refused, every time
        response = await as_token(server, secret)
        assert response.status_code == 401, (name, response.text)
    # and tokens still valid keep working
    assert gql(server.base, "{ viewer { name } }")["viewer"]["name"] == ADMIN


async def test_a_reader_over_websocket_cannot_mutate(start_server, database_url):
    reader = await make_token(database_url, "watcher", Role.READER)
    server = start_server()
    mutation = REGISTER.replace(
        "{ __typename }", "{ __typename ... on PermissionDenied { requiredRole } }"
    )
    async with Subscriber(server.ws, mutation, token=reader) as ws:
        data = await ws.next()
    assert data["registerModelVersion"] == {
        "__typename": "PermissionDenied",
        "requiredRole": "WRITER",
    }


def test_the_first_start_prints_an_admin_token_once(tmp_path):
    # given an empty database
    url = f"sqlite+aiosqlite:///{tmp_path}/fresh.db"
    env = {"MODELGRAPH_DATABASE_URL": url}
    first = Server({**_base_env(), **env})
    output = first.stop()
    secret = next(line.strip() for line in output.splitlines() if line.strip().startswith("mg_"))

    # when it starts again
    second = Server({**_base_env(), **env})
    try:
        # then the token printed the first time works, and is ADMIN
        data = gql(second.base, "{ viewer { name role } }", token=secret)
        assert data["viewer"] == {"name": "admin", "role": "ADMIN"}
    finally:
        again = second.stop()
    assert "mg_" not in again


def test_dev_mode_turns_authentication_off_and_says_so(tmp_path):
    env = {**_base_env(), "MODELGRAPH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/dev.db"}
    server = Server(env, "--dev")
    try:
        with Client(server.base) as client:
            response = client.post("{ viewer { name role } }")
        assert response.json()["data"]["viewer"] == {"name": "dev", "role": "ADMIN"}
    finally:
        output = server.stop()
    assert "DEV MODE: authentication is OFF" in output
    assert "mg_" not in output


def test_the_cli_manages_tokens_on_the_database_with_no_server(server_env):
    # when a token is created, listed and revoked from the command line
    made = cli(
        "token", "create", "--name", "ci-main", "--role", "deployer", "--json", env=server_env
    )
    listed = cli("token", "list", "--json", env=server_env)
    revoked = cli("token", "revoke", "--name", "ci-main", env=server_env)

    # then each works, the secret is shown once, and the actor is the CLI's user
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["secret"].startswith("mg_")
    assert created["token"]["role"] == "DEPLOYER"
    assert created["token"]["createdBy"].startswith("cli")
    assert listed.returncode == 0
    names = [t["name"] for t in json.loads(listed.stdout)["tokens"]]
    assert names == [ADMIN, "ci-main"]
    assert created["secret"] not in listed.stdout
    assert revoked.returncode == 0
    assert "revoked 'ci-main'" in revoked.stdout


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("create", "--name", "test-admin", "--role", "READER"), 4),  # exists
        (("create", "--name", "bad name", "--role", "READER"), 7),
        (("revoke", "--name", "nobody"), 5),
        (("revoke", "--name", "test-admin"), 4),  # the last active ADMIN
    ],
)
def test_the_cli_refusals_have_exit_codes(server_env, args, code):
    result = cli("token", *args, env=server_env)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr


async def legacy_message(ws) -> dict:
    """The next legacy graphql-ws message that is not a keep-alive."""
    while (message := json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)))["type"] == "ka":
        pass
    return message


async def test_a_legacy_client_cannot_authenticate_twice(start_server, database_url):
    # given a legacy graphql-ws connection authenticated as one token
    other = await make_token(database_url, "other", Role.ADMIN)
    server = start_server()
    async with websockets.connect(server.ws, subprotocols=["graphql-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": auth_headers()}))
        assert (await legacy_message(ws))["type"] == "connection_ack"

        # when it sends connection_init again, as another token
        await ws.send(json.dumps({"type": "connection_init", "payload": {"token": other}}))

        # then it is closed, as graphql-transport-ws does: one connection, one principal
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await legacy_message(ws)
    assert closed.value.rcvd.code == 4429


async def test_a_query_on_the_legacy_protocol_is_refused_as_the_clients_mistake(start_server):
    server = start_server()
    async with websockets.connect(server.ws, subprotocols=["graphql-ws"]) as ws:
        init = {"type": "connection_init", "payload": auth_headers()}
        await ws.send(json.dumps(init))
        assert (await legacy_message(ws))["type"] == "connection_ack"
        payload = {"query": "{ viewer { name } }"}
        await ws.send(json.dumps({"id": "1", "type": "start", "payload": payload}))
        message = await legacy_message(ws)
    errors = message["payload"].get("errors") or [message["payload"]]
    assert errors[0]["extensions"]["code"] == "BAD_REQUEST", message
    assert "INTERNAL" not in json.dumps(message)


def test_dev_mode_refuses_to_listen_beyond_loopback(tmp_path):
    env = {**_base_env(), "MODELGRAPH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/dev.db"}
    result = cli("serve", "--dev", "--host", "0.0.0.0", "--port", "1", env=env)
    assert result.returncode == 2
    assert "dev mode" in result.stderr
    assert "0.0.0.0" in result.stderr


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MODELGRAPH_")}
