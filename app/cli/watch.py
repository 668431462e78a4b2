"""watch: lifecycle events as JSON lines, from a subscription to a running server."""

import argparse
import asyncio
import json
import sys
from typing import Any

from app.cli.exits import (
    EXIT_AUTH,
    EXIT_CONNECTION,
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_TIMEOUT,
    exit_code,
    exit_for,
)
from app.cli.pipeline import client, refusal_message, server_options, token
from app.client import (
    ClientError,
    Forbidden,
    StreamClosed,
    StreamEnded,
    Subscription,
    Unauthenticated,
)

WATCH = """
subscription($model: String, $after: String) {
  lifecycleEvents(model: $model, after: $after) {
    cursor type model versionNumber fromStage toStage alias actor reason at check checkStatus
  }
}
"""


class Refused(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def add_parser(sub: Any) -> None:
    p = sub.add_parser("watch", help="print lifecycle events as JSON lines")
    p.add_argument("--model")
    p.add_argument("--after", help="resume after this event cursor")
    p.add_argument("--until-stage", type=str.upper, help="exit 0 once a version reaches this stage")
    p.add_argument("--timeout", type=float, help="seconds; exit 8 when it passes")
    server_options(p)
    p.set_defaults(handler=run)


def _check(args: argparse.Namespace) -> None:
    """Refuse a bad cursor or an unknown model now: the subscription would only wait
    (for --timeout, or for ever) on a model that never has events."""
    if args.after == "":
        raise Refused(
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
        with client(args) as graphql:
            found = graphql.execute(query, variables)
    except ClientError as exc:
        code, message = exit_for(exc), refusal_message(exc, args.url)
        if code == EXIT_REFUSED and args.after is not None:
            raise Refused(f"--after {args.after!r} was refused: {message}", code) from exc
        raise Refused(message, code) from exc
    if args.model is not None and found["model"] is None:
        raise Refused(f"model {args.model!r} does not exist", EXIT_NOT_FOUND)


async def _watch(args: argparse.Namespace) -> int:
    variables = {"model": args.model, "after": args.after}
    async with (
        asyncio.timeout(args.timeout),
        Subscription(args.url, WATCH, variables, token=token(), token_in_headers=True) as stream,
    ):
        async for data in stream:
            event = data["lifecycleEvents"]
            print(json.dumps(event), flush=True)
            if args.until_stage and event["toStage"] == args.until_stage:
                return EXIT_OK
    print("modelgraph watch: the server ended the stream", file=sys.stderr)
    return EXIT_ERROR


def run(args: argparse.Namespace) -> int:
    try:
        _check(args)
        return asyncio.run(_watch(args))
    except Refused as exc:
        print(f"modelgraph watch: {exc}", file=sys.stderr)
        return exc.code
    except TimeoutError:
        print("modelgraph watch: timed out", file=sys.stderr)
        return EXIT_TIMEOUT
    except (Unauthenticated, Forbidden) as exc:
        print(f"modelgraph watch: {exc.reason} (check MODELGRAPH_TOKEN)", file=sys.stderr)
        return EXIT_AUTH
    except StreamEnded:
        print("modelgraph watch: the server ended the stream", file=sys.stderr)
        return EXIT_ERROR
    except StreamClosed as exc:
        print(f"modelgraph watch: the server closed the stream: {exc}", file=sys.stderr)
        return exit_for(exc)
    except ClientError as exc:
        # An error in the stream keeps its refusal's code.
        print(f"modelgraph watch: {refusal_message(exc, args.url)}", file=sys.stderr)
        return exit_for(exc) if exc.status is not None else exit_code(exc.code, EXIT_ERROR)
    except OSError as exc:
        print(f"modelgraph watch: cannot reach {args.url}: {exc}", file=sys.stderr)
        return EXIT_CONNECTION
