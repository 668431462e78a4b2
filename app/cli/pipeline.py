"""The pipeline half of the CLI: GraphQL over HTTP (and a WebSocket for `watch`) to a
running server, with exit codes a shell script can branch on."""

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import httpx
import websockets

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_POLICY = 3
EXIT_CONFLICT = 4
EXIT_NOT_FOUND = 5
EXIT_CONNECTION = 6
EXIT_REFUSED = 7  # an invalid transition or invalid input
EXIT_TIMEOUT = 8
EXIT_AUTH = 9  # no token, a bad or revoked one, or a role that may not do this

# A refusal's stable code (app/errors.py and the domains' errors) -> the exit code.
EXIT_BY_CODE = {
    "POLICY_VIOLATION": EXIT_POLICY,
    "CONFLICT": EXIT_CONFLICT,
    "ALREADY_EXISTS": EXIT_CONFLICT,
    "NOT_FOUND": EXIT_NOT_FOUND,
    "INVALID_TRANSITION": EXIT_REFUSED,
    "INVALID_INPUT": EXIT_REFUSED,
    "NO_ROLLBACK_TARGET": EXIT_REFUSED,
    "PERMISSION_DENIED": EXIT_AUTH,
}

BASE = (
    "__typename ... on Error { code message } ... on Conflict { field expected actual }"
    " ... on PermissionDenied { requiredRole role }"
)
MOVES = (
    " ... on PolicyViolation { unmet { condition actual required } }"
    " ... on InvalidTransition { fromStage toStage allowedMoves }"
)
VERSION = "modelVersion { version stage source run { id } }"
# command: (mutation field, its success selection, the refusals it can answer with)
MUTATIONS = {
    "promote-best": (
        "promoteBestRun",
        f"created {VERSION} transitions {{ fromStage toStage }}",
        BASE + MOVES,
    ),
    "transition": (
        "transitionModelVersion",
        f"{VERSION} transitions {{ fromStage toStage }}",
        BASE + MOVES,
    ),
    "validate": ("recordValidation", f"validation {{ check status }} {VERSION}", BASE),
    "rollback": ("rollbackModel", f"{VERSION} transitions {{ fromStage toStage }}", BASE),
}
WATCH = """
subscription($model: String, $after: String) {
  lifecycleEvents(model: $model, after: $after) {
    cursor type model versionNumber fromStage toStage alias actor reason at check checkStatus
  }
}
"""


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def add_pipeline_commands(sub: Any) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--url",
            default=os.environ.get("MODELGRAPH_URL", "http://127.0.0.1:8000"),
            help="server (default: MODELGRAPH_URL or http://127.0.0.1:8000)",
        )
        p.add_argument("--json", action="store_true", help="print the answer as JSON")
        p.set_defaults(func=run_command)

    def retry_safe(p: argparse.ArgumentParser) -> None:
        p.add_argument("--idempotency-key", help="a retry with the same key changes nothing")

    p = sub.add_parser("promote-best", help="register the best run and move it to a stage")
    p.add_argument("--experiment", required=True)
    p.add_argument("--metric", required=True)
    p.add_argument("--goal", choices=["max", "min"], default="max")
    p.add_argument("--aggregate", choices=["last", "min", "max"], default="last")
    p.add_argument("--model", required=True)
    p.add_argument("--stage", default="STAGING", type=str.upper)
    p.add_argument("--expected-production-version", type=int)
    p.add_argument("--reason")
    retry_safe(p)
    common(p)

    p = sub.add_parser("transition", help="move a version to a stage")
    p.add_argument("--model", required=True)
    p.add_argument("--version", required=True, type=int)
    p.add_argument("--stage", required=True, type=str.upper)
    p.add_argument("--expected-production-version", type=int)
    p.add_argument("--expected-stage", type=str.upper)
    p.add_argument("--reason")
    retry_safe(p)
    common(p)

    p = sub.add_parser("validate", help="record a CI check's result on a version")
    p.add_argument("--model", required=True)
    p.add_argument("--version", required=True, type=int)
    p.add_argument("--check", required=True)
    p.add_argument(
        "--status", required=True, type=str.upper, choices=["PASSED", "FAILED", "PENDING"]
    )
    p.add_argument("--details-url")
    retry_safe(p)
    common(p)

    p = sub.add_parser("rollback", help="bring back the previous PRODUCTION version")
    p.add_argument("--model", required=True)
    p.add_argument("--reason")
    retry_safe(p)
    common(p)

    p = sub.add_parser("watch", help="print lifecycle events as JSON lines")
    p.add_argument("--model")
    p.add_argument("--after", help="resume after this event cursor")
    p.add_argument("--until-stage", type=str.upper, help="exit 0 once a version reaches this stage")
    p.add_argument("--timeout", type=float, help="seconds; exit 8 when it passes")
    common(p)


def _input(args: argparse.Namespace) -> dict[str, Any]:
    values = {
        "promote-best": lambda: {
            "experiment": args.experiment,
            "metric": args.metric,
            "model": args.model,
            "goal": "MAXIMIZE" if args.goal == "max" else "MINIMIZE",
            "aggregate": args.aggregate.upper(),
            "stage": args.stage,
            "reason": args.reason,
            "expectedProductionVersion": args.expected_production_version,
        },
        "transition": lambda: {
            "model": args.model,
            "version": args.version,
            "stage": args.stage,
            "reason": args.reason,
            "expectedProductionVersion": args.expected_production_version,
            "expectedStage": args.expected_stage,
        },
        "validate": lambda: {
            "model": args.model,
            "version": args.version,
            "check": args.check,
            "status": args.status,
            "detailsUrl": args.details_url,
        },
        "rollback": lambda: {"model": args.model, "reason": args.reason},
    }[args.command]()
    if args.idempotency_key:
        values["idempotencyKey"] = args.idempotency_key
    return {k: v for k, v in values.items() if v is not None}


def _headers() -> dict[str, str]:
    token = os.environ.get("MODELGRAPH_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


def post(url: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    try:
        response = httpx.post(
            f"{url.rstrip('/')}/graphql",
            json={"query": query, "variables": variables},
            headers=_headers(),
            timeout=60,
        )
    except httpx.TransportError as exc:
        raise CliError(f"cannot reach {url}: {exc}", EXIT_CONNECTION) from exc
    if response.status_code >= 500:
        raise CliError(f"{url} answered {response.status_code}", EXIT_CONNECTION)
    if response.status_code == 401:
        raise CliError(f"{_first_error(response)} (set MODELGRAPH_TOKEN)", EXIT_AUTH)
    if response.status_code >= 400:
        raise CliError(f"{url} refused the request: {_first_error(response)}", EXIT_REFUSED)
    body = response.json()
    if body.get("errors"):
        error = body["errors"][0]
        code = (error.get("extensions") or {}).get("code")
        raise CliError(f"{error['message']}", EXIT_BY_CODE.get(code, EXIT_REFUSED))
    return body["data"]


def _first_error(response: httpx.Response) -> str:
    try:
        return str(response.json()["errors"][0]["message"])
    except (ValueError, KeyError, IndexError, TypeError):
        return response.text[:200]


def _check_watch(args: argparse.Namespace) -> None:
    """Refuse a bad cursor or an unknown model now: the subscription would only wait
    (for --timeout, or for ever) on a model that never has events."""
    if args.after == "":
        raise CliError(
            "--after: the cursor is empty; leave --after out to start with the next event",
            EXIT_REFUSED,
        )
    declared, fields, variables = [], [], {}
    if args.model is not None:
        declared.append("$model: String!")
        fields.append("model(name: $model) { name }")
        variables["model"] = args.model
    if args.after is not None:
        declared.append("$after: String")
        fields.append("events(after: $after, first: 1) { pageInfo { hasNextPage } }")
        variables["after"] = args.after
    if not fields:
        return
    query = f"query({', '.join(declared)}) {{ {' '.join(fields)} }}"
    try:
        found = post(args.url, query, variables)
    except CliError as exc:
        if exc.code == EXIT_REFUSED and args.after is not None:
            raise CliError(f"--after {args.after!r} was refused: {exc}", exc.code) from exc
        raise
    if args.model is not None and found["model"] is None:
        raise CliError(f"model {args.model!r} does not exist", EXIT_NOT_FOUND)


def run_command(args: argparse.Namespace) -> int:
    try:
        if args.command == "watch":
            _check_watch(args)
            return asyncio.run(_watch(args))
        field, success, refusals = MUTATIONS[args.command]
        name = field[0].upper() + field[1:]
        query = (
            f"mutation($input: {name}Input!) {{ {field}(input: $input) "
            f"{{ {refusals} ... on {name}Success {{ {success} }} }} }}"
        )
        answer = post(args.url, query, {"input": _input(args)})[field]
    except CliError as exc:
        print(f"modelgraph {args.command}: {exc}", file=sys.stderr)
        return exc.code
    kind = answer["__typename"]
    code = EXIT_OK if kind.endswith("Success") else EXIT_BY_CODE.get(answer["code"], EXIT_ERROR)
    if args.json:
        print(json.dumps(answer))
    elif code == EXIT_OK:
        version = answer.get("modelVersion") or {}
        print(f"{kind}: version {version.get('version')} is {version.get('stage')}")
    else:
        print(f"{kind}: {answer.get('message')}", file=sys.stderr)
        for unmet in answer.get("unmet") or ():
            print(
                f"  - {unmet['condition']}: {unmet['actual']} (required {unmet['required']})",
                file=sys.stderr,
            )
    return code


def _stream_error(errors: list[dict[str, Any]]) -> CliError:
    first = errors[0] if errors else {}
    code = (first.get("extensions") or {}).get("code")
    return CliError(
        str(first.get("message", "the server refused")), EXIT_BY_CODE.get(code, EXIT_ERROR)
    )


async def _watch(args: argparse.Namespace) -> int:
    url = args.url.rstrip("/").replace("http://", "ws://").replace("https://", "wss://")
    variables = {"model": args.model, "after": args.after}
    try:
        async with asyncio.timeout(args.timeout):
            async with websockets.connect(
                f"{url}/graphql",
                subprotocols=["graphql-transport-ws"],
                additional_headers=_headers(),
            ) as ws:
                init = {"type": "connection_init", "payload": _headers()}
                await ws.send(json.dumps(init))
                await ws.recv()
                payload = {"query": WATCH, "variables": variables}
                await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
                async for raw in ws:
                    message = json.loads(raw)
                    if message["type"] == "ping":
                        await ws.send(json.dumps({"type": "pong"}))
                        continue
                    if message["type"] == "error":
                        raise _stream_error(message["payload"])
                    if message["type"] != "next":
                        raise CliError(f"stream ended: {message}", EXIT_ERROR)
                    if message["payload"].get("errors"):
                        raise _stream_error(message["payload"]["errors"])
                    event = message["payload"]["data"]["lifecycleEvents"]
                    print(json.dumps(event), flush=True)
                    if args.until_stage and event["toStage"] == args.until_stage:
                        return EXIT_OK
    except TimeoutError:
        print("modelgraph watch: timed out", file=sys.stderr)
        return EXIT_TIMEOUT
    except websockets.ConnectionClosed as exc:
        closed = exc.rcvd
        if closed is not None and closed.code in (4401, 4403):
            print(f"modelgraph watch: {closed.reason} (check MODELGRAPH_TOKEN)", file=sys.stderr)
            return EXIT_AUTH
        print(f"modelgraph watch: the server closed the stream: {closed}", file=sys.stderr)
        return EXIT_CONNECTION
    except OSError as exc:
        print(f"modelgraph watch: cannot reach {args.url}: {exc}", file=sys.stderr)
        return EXIT_CONNECTION
    except CliError as exc:
        print(f"modelgraph watch: {exc}", file=sys.stderr)
        return exc.code
    return EXIT_ERROR
