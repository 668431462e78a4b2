"""The seed's story through the CLI against a real server: train, promote the best to
STAGING, checks fail then pass, PRODUCTION refused then accepted, a watcher sees it,
a bad release is rolled back."""

import asyncio
import json
import os
import subprocess
import sys

from app.auth.roles import Role
from tests.conftest import make_token
from tests.e2e.conftest import ROOT, Auth, gql

START = """
mutation {
  startRun(input: {experiment: "fraud"}) { ... on StartRunSuccess { run { id } } }
}
"""
LOG = """
mutation($run: ID!, $acc: MetricValue!) {
  logMetrics(input: {runId: $run, points: [{key: "acc", value: $acc}]}) { __typename }
}
"""
POLICY = """
mutation {
  setPromotionPolicy(input: {model: "fraud-detector", stage: PRODUCTION,
                             requiredChecks: ["integration-tests"]}) { __typename }
}
"""
EVENTS = '{ events(model: "fraud-detector") { pageInfo { endCursor } } }'


def train(base: str, acc: float, token: str | None = None) -> str:
    run = gql(base, START, token=token)["startRun"]["run"]["id"]
    gql(base, LOG, run=run, acc=acc, token=token)
    return run


class Tokens:
    """The tokens a CI job runs with: MODELGRAPH_TOKEN for every `mg` call after `use`."""

    current: str | None = None


def cli_env(token: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MODELGRAPH_TOKEN"}
    secret = token if token is not None else Tokens.current or Auth.token
    return {**env, "MODELGRAPH_TOKEN": secret} if secret else env


def mg(base: str, *args: str, token: str | None = None) -> tuple[int, str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "app", *args, "--url", base],
        cwd=ROOT,
        env=cli_env(token),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.returncode, result.stdout, result.stderr


async def test_the_whole_story_through_the_cli(start_server, database_url):
    # given a trainer's WRITER token and the CI job's DEPLOYER token
    trainer = await make_token(database_url, "trainer", Role.WRITER)
    Tokens.current = await make_token(database_url, "ci-main", Role.DEPLOYER)
    server = start_server()
    base = server.base
    for acc in (0.81, 0.86, 0.84):
        train(base, acc, token=trainer)

    # promote the best run to STAGING
    code, out, _ = mg(
        base,
        "promote-best",
        "--experiment",
        "fraud",
        "--metric",
        "acc",
        "--model",
        "fraud-detector",
        "--stage",
        "STAGING",
        "--json",
    )
    assert code == 0
    promoted = json.loads(out)
    assert promoted["created"] is True
    assert promoted["modelVersion"]["stage"] == "STAGING"
    gql(base, POLICY)
    cursor = gql(base, EVENTS)["events"]["pageInfo"]["endCursor"]

    # a watcher waits for PRODUCTION
    watcher = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        "watch",
        "--model",
        "fraud-detector",
        "--after",
        cursor,
        "--until-stage",
        "PRODUCTION",
        "--timeout",
        "60",
        "--url",
        base,
        cwd=ROOT,
        env=cli_env(None),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )

    # checks fail: PRODUCTION is refused by the policy
    assert (
        mg(
            base,
            "validate",
            "--model",
            "fraud-detector",
            "--version",
            "1",
            "--check",
            "integration-tests",
            "--status",
            "failed",
        )[0]
        == 0
    )
    code, _, err = mg(
        base, "transition", "--model", "fraud-detector", "--version", "1", "--stage", "PRODUCTION"
    )
    assert code == 3
    assert "integration-tests" in err

    # checks pass: PRODUCTION is accepted, and the watcher exits 0 having seen it
    assert (
        mg(
            base,
            "validate",
            "--model",
            "fraud-detector",
            "--version",
            "1",
            "--check",
            "integration-tests",
            "--status",
            "passed",
        )[0]
        == 0
    )
    assert (
        mg(
            base,
            "transition",
            "--model",
            "fraud-detector",
            "--version",
            "1",
            "--stage",
            "PRODUCTION",
            "--idempotency-key",
            "release-1",
        )[0]
        == 0
    )
    out, _ = await asyncio.wait_for(watcher.communicate(), 60)
    assert watcher.returncode == 0
    seen = [json.loads(line) for line in out.decode().splitlines()]
    assert [e["type"] for e in seen] == [
        "VALIDATION_RECORDED",
        "VALIDATION_RECORDED",
        "STAGE_CHANGED",
    ]
    assert seen[-1]["toStage"] == "PRODUCTION"
    # every change names the token that made it
    assert {e["actor"] for e in seen} == {"ci-main"}

    # a better model replaces it (the old one is archived), then is rolled back
    train(base, 0.9, token=trainer)
    code, out, _ = mg(
        base,
        "promote-best",
        "--experiment",
        "fraud",
        "--metric",
        "acc",
        "--model",
        "fraud-detector",
        "--stage",
        "STAGING",
        "--json",
    )
    assert code == 0
    assert json.loads(out)["modelVersion"]["version"] == 2
    mg(
        base,
        "validate",
        "--model",
        "fraud-detector",
        "--version",
        "2",
        "--check",
        "integration-tests",
        "--status",
        "passed",
    )
    assert (
        mg(
            base,
            "transition",
            "--model",
            "fraud-detector",
            "--version",
            "2",
            "--stage",
            "PRODUCTION",
            "--expected-production-version",
            "1",
        )[0]
        == 0
    )
    code, out, _ = mg(base, "rollback", "--model", "fraud-detector", "--json")
    assert code == 0
    restored = json.loads(out)["modelVersion"]
    assert (restored["version"], restored["stage"]) == (1, "PRODUCTION")
    Tokens.current = None


async def test_exit_codes_a_script_can_branch_on(start_server):
    base = start_server().base
    assert mg(base, "rollback", "--model", "nope")[0] == 5  # not found
    train(base, 0.8)
    mg(
        base,
        "promote-best",
        "--experiment",
        "fraud",
        "--metric",
        "acc",
        "--model",
        "m",
        "--stage",
        "PRODUCTION",
    )
    stale = mg(
        base,
        "transition",
        "--model",
        "m",
        "--version",
        "1",
        "--stage",
        "ARCHIVED",
        "--expected-production-version",
        "7",
    )
    assert stale[0] == 4  # conflict
    assert (
        mg(base, "transition", "--model", "m", "--version", "1", "--stage", "DEVELOPMENT")[0] == 7
    )
    assert mg("http://127.0.0.1:1", "rollback", "--model", "m")[0] == 6  # connection
    code, _, _ = mg(base, "watch", "--model", "m", "--until-stage", "STAGING", "--timeout", "1")
    assert code == 8  # timeout


async def test_without_the_right_token_every_command_exits_9(start_server, database_url):
    reader = await make_token(database_url, "dashboard", Role.READER)
    writer = await make_token(database_url, "trainer", Role.WRITER)
    base = start_server().base
    rollback = ("rollback", "--model", "m")
    watch = ("watch", "--model", "m", "--timeout", "5")
    # no token, a made-up one: not authenticated
    assert mg(base, *rollback, token="")[0] == 9
    assert mg(base, *rollback, token="mg_not-a-real-token")[0] == 9
    code, _, err = mg(base, *watch, token="")
    assert code == 9, err
    assert mg(base, *watch, token="mg_not-a-real-token")[0] == 9
    # a role below DEPLOYER: refused with the role it needs
    code, out, _ = mg(base, *rollback, "--json", token=reader)
    assert code == 9
    assert json.loads(out)["requiredRole"] == "DEPLOYER"
    assert mg(base, *rollback, token=writer)[0] == 9


async def test_watch_refuses_a_bad_cursor_and_an_unknown_model_before_waiting(start_server):
    base = start_server().base
    train(base, 0.8)
    promote = ("--experiment", "fraud", "--metric", "acc", "--model", "m", "--stage", "STAGING")
    assert mg(base, "promote-best", *promote)[0] == 0
    # an empty or made-up cursor: invalid input, naming the flag
    for cursor in ("", "not-a-cursor", "ZXZlbnQ6OTk="):
        code, out, err = mg(base, "watch", "--model", "m", "--after", cursor, "--timeout", "20")
        assert code == 7, (cursor, err)
        assert "--after" in err
        assert out == ""
    # a model that does not exist: not found, instead of waiting for the timeout
    code, out, err = mg(base, "watch", "--model", "nope", "--timeout", "20")
    assert code == 5, err
    assert "'nope'" in err
    assert out == ""
