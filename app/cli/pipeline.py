"""promote-best | transition | validate | rollback: one mutation each over HTTP to a running
server, answered with an exit code a shell script can branch on."""

import argparse
import json
import os
import sys
from typing import Any

from app.cli.exits import EXIT_ERROR, EXIT_OK, exit_code, exit_for
from app.client import Client, ClientError

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


def server_options(p: argparse.ArgumentParser) -> None:
    """--url and --json, which every command talking to a server takes."""
    p.add_argument(
        "--url",
        default=os.environ.get("MODELGRAPH_URL", "http://127.0.0.1:8000"),
        help="server (default: MODELGRAPH_URL or http://127.0.0.1:8000)",
    )
    p.add_argument("--json", action="store_true", help="print the answer as JSON")


def token() -> str | None:
    return os.environ.get("MODELGRAPH_TOKEN") or None


def client(args: argparse.Namespace) -> Client:
    return Client(args.url, token=token())


def refusal_message(error: ClientError, url: str) -> str:
    """What the CLI says about a request the server refused or never saw."""
    if error.status == 401:
        return f"{error.message} (set MODELGRAPH_TOKEN)"
    if error.status is not None and error.status >= 500:
        return f"{url} answered {error.status}"
    if error.status is not None and error.status >= 400:
        return f"{url} refused the request: {error.message}"
    return error.message


def add_parser(sub: Any) -> None:
    def retry_safe(p: argparse.ArgumentParser) -> None:
        p.add_argument("--idempotency-key", help="a retry with the same key changes nothing")
        server_options(p)
        p.set_defaults(handler=run)

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

    p = sub.add_parser("transition", help="move a version to a stage")
    p.add_argument("--model", required=True)
    p.add_argument("--version", required=True, type=int)
    p.add_argument("--stage", required=True, type=str.upper)
    p.add_argument("--expected-production-version", type=int)
    p.add_argument("--expected-stage", type=str.upper)
    p.add_argument("--reason")
    retry_safe(p)

    p = sub.add_parser("validate", help="record a CI check's result on a version")
    p.add_argument("--model", required=True)
    p.add_argument("--version", required=True, type=int)
    p.add_argument("--check", required=True)
    p.add_argument(
        "--status", required=True, type=str.upper, choices=["PASSED", "FAILED", "PENDING"]
    )
    p.add_argument("--details-url")
    retry_safe(p)

    p = sub.add_parser("rollback", help="bring back the previous PRODUCTION version")
    p.add_argument("--model", required=True)
    p.add_argument("--reason")
    retry_safe(p)


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


def run(args: argparse.Namespace) -> int:
    field, success, refusals = MUTATIONS[args.command]
    name = field[0].upper() + field[1:]
    query = (
        f"mutation($input: {name}Input!) {{ {field}(input: $input) "
        f"{{ {refusals} ... on {name}Success {{ {success} }} }} }}"
    )
    try:
        with client(args) as graphql:
            answer = graphql.execute(query, {"input": _input(args)})[field]
    except ClientError as exc:
        print(f"modelgraph {args.command}: {refusal_message(exc, args.url)}", file=sys.stderr)
        return exit_for(exc)
    kind = answer["__typename"]
    code = EXIT_OK if kind.endswith("Success") else exit_code(answer["code"], EXIT_ERROR)
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
