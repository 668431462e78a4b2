"""demo: fill the database with demo experiments and models, in one transaction."""

import argparse
import asyncio
import sys
from typing import Any

from app.cli.exits import EXIT_OK, EXIT_USAGE, exit_code
from app.config import Settings
from app.db import migrate
from app.demo import seed
from app.errors import AlreadyExistsError, DomainError


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="fill the database with demo experiments and models in one transaction (again:"
        " says the data is there and writes nothing)",
    )
    p.add_argument("--runs", type=int, default=300, help="runs in all (default 300)")
    p.add_argument("--seed", type=int, default=7, help="random seed")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    migrate.upgrade(settings.database_url)
    try:
        summary = asyncio.run(seed(settings, runs=args.runs, seed_value=args.seed))
    except ValueError as exc:
        print(f"modelgraph demo: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AlreadyExistsError as exc:
        print(
            f"modelgraph demo: {exc.message}, not made by the demo; nothing was written"
            " (point MODELGRAPH_DATABASE_URL at another database)",
            file=sys.stderr,
        )
        return exit_code(exc.code)
    except DomainError as exc:
        print(f"modelgraph demo: {exc.message}; nothing was written", file=sys.stderr)
        return exit_code(exc.code)
    print(summary)
    return EXIT_OK
