"""modelgraph serve | db | export-schema | demo | promote-best | transition | validate | rollback | watch"""

import argparse
import asyncio
import logging
import sys

import uvicorn

from app.cli_pipeline import add_pipeline_commands, run_command
from app.config import Settings
from app.db import migrate
from app.demo import seed
from app.graphql.schema import export_sdl
from app.main import create_app


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    host = args.host or settings.host
    port = args.port or settings.port
    migrate.upgrade(settings.database_url)
    print(f"modelgraph listening on http://{host}:{port}/graphql", flush=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level=settings.log_level)
    return 0


def _db(args: argparse.Namespace, settings: Settings) -> int:
    if args.db_command == "upgrade":
        migrate.upgrade(settings.database_url, args.revision)
    elif args.db_command == "downgrade":
        migrate.downgrade(settings.database_url, args.revision)
    elif args.db_command == "revision":
        migrate.revision(settings.database_url, args.message)
    else:
        migrate.current(settings.database_url)
    return 0


def _export_schema(args: argparse.Namespace, settings: Settings) -> int:
    sys.stdout.write(export_sdl())
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    migrate.upgrade(settings.database_url)
    try:
        summary = asyncio.run(seed(settings, runs=args.runs, seed_value=args.seed))
    except ValueError as exc:
        print(f"modelgraph demo: {exc}", file=sys.stderr)
        return 2
    print(summary)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelgraph", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="upgrade the database, then serve GraphQL")
    serve.add_argument("--host", help="default: MODELGRAPH_HOST or 127.0.0.1")
    serve.add_argument("--port", type=int, help="default: MODELGRAPH_PORT or 8000")
    serve.set_defaults(func=_serve)

    db = sub.add_parser("db", help="database migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="apply migrations")
    up.add_argument("revision", nargs="?", default="head")
    down = db_sub.add_parser("downgrade", help="revert migrations")
    down.add_argument("revision")
    db_sub.add_parser("current", help="show the applied revision")
    rev = db_sub.add_parser("revision", help="autogenerate a migration (database at head)")
    rev.add_argument("-m", "--message", required=True)
    db.set_defaults(func=_db)

    export = sub.add_parser("export-schema", help="print the GraphQL SDL")
    export.set_defaults(func=_export_schema)

    demo = sub.add_parser("demo", help="fill the database with demo experiments and models")
    demo.add_argument("--runs", type=int, default=300, help="runs in all (default 300)")
    demo.add_argument("--seed", type=int, default=7, help="random seed")
    demo.set_defaults(func=_demo)

    add_pipeline_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.func is run_command:
        return run_command(args)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args, Settings()))
