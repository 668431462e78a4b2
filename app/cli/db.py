"""db upgrade | downgrade | current | revision, and export-schema: the database's migrations
and the API's schema."""

import argparse
import sys
from typing import Any

from app.cli.exits import EXIT_OK
from app.config import Settings
from app.db import migrate


def add_parser(sub: Any) -> None:
    db = sub.add_parser("db", help="database migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="apply migrations")
    up.add_argument("revision", nargs="?", default="head")
    down = db_sub.add_parser("downgrade", help="revert migrations")
    down.add_argument("revision")
    db_sub.add_parser("current", help="show the applied revision")
    rev = db_sub.add_parser("revision", help="autogenerate a migration (database at head)")
    rev.add_argument("-m", "--message", required=True)
    db.set_defaults(handler=run)

    export = sub.add_parser("export-schema", help="print the GraphQL SDL")
    export.set_defaults(handler=export_schema)


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    if args.db_command == "upgrade":
        migrate.upgrade(settings.database_url, args.revision)
    elif args.db_command == "downgrade":
        migrate.downgrade(settings.database_url, args.revision)
    elif args.db_command == "revision":
        migrate.revision(settings.database_url, args.message)
    else:
        migrate.current(settings.database_url)
    return EXIT_OK


def export_schema(args: argparse.Namespace) -> int:
    # Here, not at the top: the commands that only talk to a server need not load it.
    from app.graphql.schema import export_sdl

    sys.stdout.write(export_sdl())
    return EXIT_OK
