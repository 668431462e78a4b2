"""`modelgraph serve` start-up, and what the database commands print."""

import json
import os
import re
import socket
from pathlib import Path

from tests.e2e.conftest import Server, cli


def env_for(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MODELGRAPH_TOKEN"}
    return {**env, "MODELGRAPH_DATABASE_URL": database_url}


async def test_a_busy_port_fails_before_the_first_admin_token_is_made(database_url):
    # given a database with no tokens, and the port taken by another listener
    env = env_for(database_url)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        # when the server starts on it
        result = cli("serve", "--host", "127.0.0.1", "--port", str(port), env=env)

    # then it fails saying why, and shows no token (none was made, so none is lost)
    assert result.returncode == 1
    assert f"127.0.0.1:{port} is in use" in result.stderr
    assert "mg_" not in result.stdout + result.stderr
    assert cli("token", "list", "--json", env=env).stdout.strip() == '{"tokens": []}'

    # and the next start, on a free port, makes the first ADMIN token and shows it
    server = Server(env)
    try:
        tokens = cli("token", "list", "--json", env=env).stdout
    finally:
        output = server.stop()
    secret = re.search(r"mg_\S+", output)
    assert secret is not None, output
    assert json.loads(tokens)["tokens"][0]["prefix"] == secret.group()[:10]


async def test_database_commands_print_nothing_on_stderr(database_url, tmp_path: Path):
    fresh = env_for(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
    migrated = env_for(database_url)
    runs = [
        cli("db", "upgrade", env=fresh),
        cli("db", "upgrade", env=migrated),
        cli("token", "create", "--name", "ci-main", "--role", "DEPLOYER", env=migrated),
        cli("token", "list", env=migrated),
    ]
    for result in runs:
        assert result.returncode == 0, result.stderr
        assert result.stderr == "", result.args
    assert "ci-main" in runs[-1].stdout
