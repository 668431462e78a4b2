"""token create | list | revoke: API tokens, straight on the database (the server up or not)."""

import argparse
import asyncio
import getpass
import json
import sys
from typing import Any

from app.auth import service as auth_service
from app.auth.roles import Role
from app.cli.exits import EXIT_OK, exit_code
from app.config import Settings
from app.db import Database, migrate
from app.errors import DomainError


def add_parser(sub: Any) -> None:
    token = sub.add_parser("token", help="API tokens (on the database, server up or not)")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="make a token and print its secret once")
    create.add_argument("--name", required=True, help="unique for ever: letters, digits, . _ -")
    create.add_argument("--role", required=True, type=str.upper, choices=[r.value for r in Role])
    create.add_argument("--json", action="store_true")
    listing = token_sub.add_parser("list", help="every token, revoked ones included")
    listing.add_argument("--json", action="store_true")
    revoke = token_sub.add_parser("revoke", help="revoke a token: it stops working at once")
    revoke.add_argument("--name", required=True)
    revoke.add_argument("--json", action="store_true")
    token.set_defaults(handler=run)


def cli_actor() -> str:
    """Who a change made from the command line is recorded as."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _token_row(token: Any) -> dict[str, Any]:
    def at(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "name": token.name,
        "role": token.role,
        "prefix": token.prefix,
        "createdAt": at(token.created_at),
        "createdBy": token.created_by,
        "revokedAt": at(token.revoked_at),
        "revokedBy": token.revoked_by,
        "lastUsedAt": at(token.last_used_at),
    }


async def _command(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    db = Database.from_settings(settings)
    try:
        if args.token_command == "create":
            async with db.unit_of_work() as session:
                token, secret = await auth_service.create_token(
                    session, name=args.name, role=Role(args.role), actor=cli_actor()
                )
            return {"token": _token_row(token), "secret": secret}
        if args.token_command == "revoke":
            async with db.unit_of_work() as session:
                token = await auth_service.revoke_token(session, name=args.name, actor=cli_actor())
            return {"token": _token_row(token)}
        async with db.read() as session:
            tokens = await auth_service.all_tokens(session)
        return {"tokens": [_token_row(t) for t in tokens]}
    finally:
        await db.dispose()


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    migrate.upgrade(settings.database_url)
    try:
        answer = asyncio.run(_command(args, settings))
    except DomainError as exc:
        print(f"modelgraph token {args.token_command}: {exc.message}", file=sys.stderr)
        return exit_code(exc.code)
    if args.json:
        print(json.dumps(answer))
    elif args.token_command == "create":
        print(f"created {args.role} token {args.name!r}; its secret (shown only now):")
        print(answer["secret"])
    elif args.token_command == "revoke":
        print(f"revoked {args.name!r} (at {answer['token']['revokedAt']})")
    else:
        for t in answer["tokens"]:
            state = f"revoked {t['revokedAt']}" if t["revokedAt"] else "active"
            used = t["lastUsedAt"] or "never"
            print(f"{t['name']:<24} {t['role']:<9} {t['prefix']}…  {state}; last used {used}")
    return EXIT_OK
