"""modelgraph serve | db | token | export-schema | demo | promote-best | transition | validate |
rollback | watch"""

import argparse
import asyncio
import errno
import getpass
import json
import logging
import socket
import sys
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.auth import service as auth_service
from app.auth.roles import Role
from app.cli_pipeline import EXIT_BY_CODE, EXIT_ERROR, add_pipeline_commands, run_command
from app.config import Settings
from app.db import Database, migrate
from app.demo import seed
from app.errors import AlreadyExistsError, ConflictError, DomainError
from app.graphql.schema import export_sdl
from app.main import create_app

LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEV_WARNING = """\
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! DEV MODE: authentication is OFF. Anyone who can reach this port may    !!
!! read, write, promote and manage tokens. Never run a shared server so.  !!
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"""

FIRST_TOKEN = """\
=============================================================================
 modelgraph: this database had no API tokens, so an ADMIN token was made.
 It is shown this once; only its hash is stored. Keep it somewhere safe.

     {secret}

 Use it:      curl -H 'Authorization: Bearer {secret}' ...
 Make more:   modelgraph token create --name ci-main --role DEPLOYER
============================================================================="""


def cli_actor() -> str:
    """Who a change made from the command line is recorded as."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


async def _bootstrap(settings: Settings) -> str | None:
    db = Database.from_settings(settings)
    try:
        async with db.unit_of_work() as session:
            return await auth_service.bootstrap_admin(session, actor="modelgraph serve")
    except ConflictError:
        return None  # another replica starting at the same moment made it
    finally:
        await db.dispose()


def _listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound before anything is made for it: the first ADMIN token is
    shown only once, so a start that cannot listen must fail before making it."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        # As uvicorn binds: a restart need not wait for the old connections' TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request's headers: uvicorn
    itself holds a connection for ever while a client trickles its request line and
    headers (or sends nothing); its keep-alive timeout only runs between requests."""

    header_timeout: float = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    host = args.host or settings.host
    port = args.port or settings.port
    if args.dev:
        settings = settings.model_copy(update={"dev_mode": True})
    if settings.dev_mode and host not in LOOPBACK:
        print(
            f"modelgraph serve: dev mode turns authentication off; it serves {', '.join(LOOPBACK)}"
            f" only, not {host}",
            file=sys.stderr,
        )
        return 2
    try:
        sock = _listen(host, port)
    except OSError as exc:
        reason = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be used: {exc.strerror}"
        print(
            f"modelgraph serve: {host}:{port} {reason}; nothing was started or changed"
            " (choose another with --port)",
            file=sys.stderr,
        )
        return 1
    with sock:
        migrate.upgrade(settings.database_url)
        if settings.dev_mode:
            print(DEV_WARNING, flush=True)
            logging.getLogger("modelgraph").warning("dev mode: authentication is off")
        elif (secret := asyncio.run(_bootstrap(settings))) is not None:
            print(FIRST_TOKEN.format(secret=secret), flush=True)
        print(f"modelgraph listening on http://{host}:{port}/graphql", flush=True)
        config = uvicorn.Config(
            create_app(settings),
            host=host,
            port=port,
            log_level=settings.log_level,
            ws_max_size=settings.max_body_bytes,
            http=type(
                "HeaderDeadlineProtocol",
                (HeaderDeadlineProtocol,),
                {"header_timeout": settings.http_header_timeout_seconds},
            ),
            timeout_keep_alive=settings.http_keep_alive_seconds,
            # Every open socket counts, WebSockets included: beyond it, requests get a 503.
            limit_concurrency=settings.max_connections,
        )
        server = uvicorn.Server(config)
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:
            pass
    return 0 if server.started else 1


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


async def _token_command(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
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


def _token(args: argparse.Namespace, settings: Settings) -> int:
    """Token management straight on the database: works with the server down too."""
    migrate.upgrade(settings.database_url)
    try:
        answer = asyncio.run(_token_command(args, settings))
    except DomainError as exc:
        print(f"modelgraph token {args.token_command}: {exc.message}", file=sys.stderr)
        return EXIT_BY_CODE.get(exc.code, EXIT_ERROR)
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
    except AlreadyExistsError as exc:
        print(
            f"modelgraph demo: {exc.message}, not made by the demo; nothing was written"
            " (point MODELGRAPH_DATABASE_URL at another database)",
            file=sys.stderr,
        )
        return EXIT_BY_CODE[exc.code]
    except DomainError as exc:
        print(f"modelgraph demo: {exc.message}; nothing was written", file=sys.stderr)
        return EXIT_BY_CODE.get(exc.code, EXIT_ERROR)
    print(summary)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelgraph", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="upgrade the database, then serve GraphQL")
    serve.add_argument("--host", help="default: MODELGRAPH_HOST or 127.0.0.1")
    serve.add_argument("--port", type=int, help="default: MODELGRAPH_PORT or 8000")
    serve.add_argument(
        "--dev", action="store_true", help="turn authentication OFF (a laptop, never a server)"
    )
    serve.set_defaults(func=_serve)

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
    token.set_defaults(func=_token)

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

    demo = sub.add_parser(
        "demo",
        help="fill the database with demo experiments and models in one transaction (again:"
        " says the data is there and writes nothing)",
    )
    demo.add_argument("--runs", type=int, default=300, help="runs in all (default 300)")
    demo.add_argument("--seed", type=int, default=7, help="random seed")
    demo.set_defaults(func=_demo)

    add_pipeline_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.func is run_command:
        return run_command(args)
    # A command's output is its answer: INFO lines (Alembic's steps) belong in a server's log.
    level = logging.INFO if args.command == "serve" else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args, Settings()))
