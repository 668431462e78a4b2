"""A real server: `python -m app serve` under uvicorn on 127.0.0.1, in a subprocess."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


class Auth:
    """The ADMIN token of the running e2e test (set by `server_env`), which the helpers
    below send unless told otherwise, and which CLI subprocesses get as MODELGRAPH_TOKEN."""

    token: str | None = None


def auth_headers(token: str | None = None) -> dict[str, str]:
    secret = token or Auth.token
    return {"Authorization": f"Bearer {secret}"} if secret else {}


def gql(base: str, query: str, *, token: str | None = None, **variables: Any) -> dict[str, Any]:
    """POST a GraphQL request to a real server; insists on a clean 200 with no errors."""
    response = httpx.post(
        f"{base}/graphql",
        json={"query": query, "variables": variables},
        headers=auth_headers(token),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
def server_env(database_url: str, admin_secret: str) -> Iterator[dict[str, str]]:
    Auth.token = admin_secret
    yield {**os.environ, "MODELGRAPH_DATABASE_URL": database_url, "MODELGRAPH_TOKEN": admin_secret}
    Auth.token = None


class Server:
    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}/graphql"
        command = ["serve", "--host", "127.0.0.1", "--port", str(self.port), *args]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", *command],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.proc.kill()
        pytest.fail(f"server did not start: {self.proc.stdout.read() if self.proc.stdout else ''}")

    def kill(self) -> str:
        """SIGKILL, as a crash or the OOM killer would: no shutdown runs. Its output."""
        self.proc.kill()
        return self.proc.communicate(timeout=30)[0]

    def stop(self) -> str:
        """Stop the server (SIGTERM, as an orchestrator would); returns its output."""
        if self.proc.poll() is None:
            self.proc.terminate()
        output = self.proc.communicate(timeout=30)[0]
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
