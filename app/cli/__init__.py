"""modelgraph serve | db | token | export-schema | demo | promote-best | transition | validate |
rollback | watch | artifacts | pull | import-mlflow

Each command's module adds its parser with `add_parser(sub)` and sets `handler`, which
takes the parsed arguments and returns the exit code (app/cli/exits.py)."""

import argparse
import logging

from app.cli import artifacts, db, demo, import_mlflow, pipeline, pull, serve, token, watch


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelgraph", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (serve, token, db, demo, pipeline, watch, artifacts, pull, import_mlflow):
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # A command's output is its answer: INFO lines (Alembic's steps) belong in a server's log.
    level = logging.INFO if args.command == "serve" else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    return int(args.handler(args))
