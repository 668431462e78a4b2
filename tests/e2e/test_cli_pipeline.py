"""The seed's story through the CLI against a real server: train, promote the best to
STAGING, checks fail then pass, PRODUCTION refused then accepted, a watcher sees it,
a bad release is rolled back."""

import asyncio
import json
import subprocess
import sys

import httpx

from tests.e2e.conftest import ROOT

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


def gql(base: str, query: str, **variables) -> dict:
    body = httpx.post(f"{base}/graphql", json={"query": query, "variables": variables}).json()
    assert "errors" not in body, body
    return body["data"]


def train(base: str, acc: float) -> str:
    run = gql(base, START)["startRun"]["run"]["id"]
    gql(base, LOG, run=run, acc=acc)
    return run


def mg(base: str, *args: str) -> tuple[int, str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "app", *args, "--url", base],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.returncode, result.stdout, result.stderr


async def test_the_whole_story_through_the_cli(start_server):
    server = start_server()
    base = server.base
    for acc in (0.81, 0.86, 0.84):
        train(base, acc)

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
    assert promoted["created"] is True and promoted["modelVersion"]["stage"] == "STAGING"
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
    assert code == 3 and "integration-tests" in err

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

    # a better model replaces it (the old one is archived), then is rolled back
    train(base, 0.9)
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
    assert code == 0 and json.loads(out)["modelVersion"]["version"] == 2
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
