"""A real server: `python -m app serve` under uvicorn on 127.0.0.1, in a subprocess
(app.client.LocalServer), and the GraphQL client the tests talk to it with (app.client)."""

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.client import Client, LocalServer
from app.client import auth_headers as bearer
from app.client.server import ServerStartError

ROOT = Path(__file__).resolve().parents[2]


class Auth:
    """The ADMIN token of the running e2e test (set by `server_env`), which the helpers
    below send unless told otherwise, and which CLI subprocesses get as MODELGRAPH_TOKEN."""

    token: str | None = None


def auth_headers(token: str | None = None) -> dict[str, str]:
    return bearer(token or Auth.token)


def gql(base: str, query: str, *, token: str | None = None, **variables: Any) -> dict[str, Any]:
    """A GraphQL request to a real server: its data; a refusal or an error raises."""
    with Client(base, token=token or Auth.token, timeout=30) as client:
        return client.execute(query, variables)


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def server_env(database_url: str, admin_secret: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    Auth.token = admin_secret
    yield {
        **os.environ,
        "MODELGRAPH_DATABASE_URL": database_url,
        "MODELGRAPH_TOKEN": admin_secret,
        # The default store on PostgreSQL is ./artifacts, and servers run in the checkout.
        "MODELGRAPH_ARTIFACT_STORE": str(tmp_path / "artifact-store"),
    }
    Auth.token = None


class Server(LocalServer):
    """A started LocalServer whose stop() checks it listened and printed no traceback."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        super().__init__(env, args, cwd=ROOT)
        self.base, self.ws = self.base_url, self.ws_url
        try:
            self.start()
        except ServerStartError as exc:
            pytest.fail(f"server did not start: {exc}")

    def stop(self, *args: Any, **kwargs: Any) -> str:
        """Stop the server (SIGTERM, as an orchestrator would); returns its output."""
        output = super().stop(*args, **kwargs)
        assert f"listening on http://127.0.0.1:{self.port}/graphql" in output
        assert "Traceback" not in output, output
        return output


@pytest.fixture
def start_server(server_env: dict[str, str]) -> Iterator[Callable[..., Server]]:
    """Start servers on the test database; all are stopped (and checked) at the end."""
    servers: list[Server] = []

    def start(*args: str, **env: str) -> Server:
        servers.append(Server({**server_env, **env}, *args))
        return servers[-1]

    yield start
    for server in servers:
        if server.proc.returncode is None:
            server.stop()


@pytest.fixture
def server(start_server: Callable[..., Server]) -> str:
    return start_server().base
