"""serve: upgrade the database, make the first ADMIN token if there is none, serve GraphQL."""

import argparse
import asyncio
import contextlib
import errno
import logging
import socket
import sys
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.auth import service as auth_service
from app.cli.exits import EXIT_ERROR, EXIT_OK, EXIT_USAGE
from app.config import Settings
from app.db import Database, migrate
from app.errors import ConflictError

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


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="upgrade the database, then serve GraphQL")
    p.add_argument("--host", help="default: MODELGRAPH_HOST or 127.0.0.1")
    p.add_argument("--port", type=int, help="default: MODELGRAPH_PORT or 8000")
    p.add_argument(
        "--dev", action="store_true", help="turn authentication OFF (a laptop, never a server)"
    )
    p.set_defaults(handler=run)


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


def run(args: argparse.Namespace) -> int:
    settings = Settings()
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
        return EXIT_USAGE
    try:
        sock = _listen(host, port)
    except OSError as exc:
        reason = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be used: {exc.strerror}"
        print(
            f"modelgraph serve: {host}:{port} {reason}; nothing was started or changed"
            " (choose another with --port)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    with sock:
        migrate.upgrade(settings.database_url)
        if settings.dev_mode:
            print(DEV_WARNING, flush=True)
            logging.getLogger("modelgraph").warning("dev mode: authentication is off")
        elif (secret := asyncio.run(_bootstrap(settings))) is not None:
            print(FIRST_TOKEN.format(secret=secret), flush=True)
        print(f"modelgraph listening on http://{host}:{port}/graphql", flush=True)
        # Here, not at the top: the commands that only talk to a server need not load it.
        from app.main import create_app

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
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
    return EXIT_OK if server.started else EXIT_ERROR
