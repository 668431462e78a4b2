"""serve: upgrade the database, make the first ADMIN token if there is none, serve GraphQL.

With `--workers N` (PostgreSQL only) uvicorn's supervisor runs N worker processes on the
one socket bound here; each runs the whole app with its own lifespan (pool, event bus,
access control, metric feed). What must be the same in every worker travels between them:
lifecycle events and revocations by LISTEN/NOTIFY, a revocation also by the WorkerMark
file (app/auth/access.py) so the other workers refuse the token before the revoking
request answers, and live metric points by one NOTIFY per ingest commit, the points read
from the table by the workers whose subscribers want them (app/events/live.py).
"""

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn
from sqlalchemy.engine import make_url
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors.multiprocess import Multiprocess

from app.auth import access
from app.auth import service as auth_service
from app.cli.exits import EXIT_ERROR, EXIT_OK, EXIT_USAGE
from app.config import Settings
from app.db import Database, migrate
from app.errors import ConflictError
from app.events import live
from app.gc_policy import tune_for_serving

# On every response of a worker process (HTTP, and a WebSocket's handshake): which worker
# answered. /healthz and /metrics are per worker too.
WORKER_HEADER = "x-modelgraph-worker"
SQLITE_WORKERS = """modelgraph serve: --workers {workers} needs PostgreSQL; this database is SQLite, which serves one process. SQLite has a single writer, and the event pump and the live metric feed of a process serve only that process's subscribers. Serve SQLite with one worker, or move to PostgreSQL (MODELGRAPH_DATABASE_URL=postgresql+asyncpg://...)."""

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
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes sharing the port, one per core (default 1). PostgreSQL only: "
        "with SQLite anything but 1 exits with 2. MODELGRAPH_MAX_CONNECTIONS and the pool "
        "size count per worker",
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


def header_deadline_protocol(timeout: float) -> type[HeaderDeadlineProtocol]:
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout": timeout})


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What a server process is told, in one process or in each worker."""
    return {
        "log_level": settings.log_level,
        "ws_max_size": settings.max_body_bytes,
        "timeout_keep_alive": settings.http_keep_alive_seconds,
        # Every open socket counts, WebSockets included: beyond it, requests get a 503.
        "limit_concurrency": settings.max_connections,
    }


ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


def with_worker_header(app: ASGIApp) -> ASGIApp:
    """`app`, naming this worker process on every response (WORKER_HEADER)."""
    pid = str(os.getpid()).encode()

    async def named(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await app(scope, receive, send)

        async def send_named(message: MutableMapping[str, Any]) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                headers = [*message.get("headers", ()), (WORKER_HEADER.encode(), pid)]
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_named)

    return named


class WorkerConfig(uvicorn.Config):
    """The configuration each worker process unpickles: the settings and the revocation
    mark's path travel in it, and load() builds the app in the worker itself."""

    def __init__(self, settings: Settings, mark_path: str, workers: int) -> None:
        self.settings = settings
        self.mark_path = mark_path
        # A placeholder import string (the config must pickle); load() replaces it.
        super().__init__("app.main:create_app", workers=workers, **uvicorn_options(settings))

    def load(self) -> None:
        tune_for_serving()
        access.share_revocations_between_workers(self.mark_path)
        live.share_between_workers()
        from app.main import create_app

        self.app = with_worker_header(create_app(self.settings))
        self.http = header_deadline_protocol(self.settings.http_header_timeout_seconds)
        super().load()


def serve_workers(settings: Settings, sock: socket.socket, workers: int) -> int:
    """Run `workers` processes on `sock` until SIGINT or SIGTERM (each worker then drains
    and runs its lifespan's shutdown); a worker that dies is replaced, one that cannot
    start stops them all."""
    fd, mark_path = tempfile.mkstemp(prefix="modelgraph-revocations-")
    os.close(fd)
    try:
        access.make_worker_mark(mark_path)
        supervisor = Multiprocess(WorkerConfig(settings, mark_path, workers), sockets=[sock])
        supervisor.run()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(mark_path)
    failed = any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes)
    return EXIT_ERROR if failed else EXIT_OK


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    host = args.host or settings.host
    port = args.port or settings.port
    if args.dev:
        settings = settings.model_copy(update={"dev_mode": True})
    if args.workers < 1:
        print("modelgraph serve: --workers must be 1 or more", file=sys.stderr)
        return EXIT_USAGE
    if args.workers > 1 and not make_url(settings.database_url).get_backend_name().startswith(
        "postgresql"
    ):
        print(SQLITE_WORKERS.format(workers=args.workers), file=sys.stderr)
        return EXIT_USAGE
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
        if args.workers > 1:
            return serve_workers(settings, sock, args.workers)
        # Here, not at the top: the commands that only talk to a server need not load it.
        from app.main import create_app

        config = uvicorn.Config(
            create_app(settings),
            host=host,
            port=port,
            http=header_deadline_protocol(settings.http_header_timeout_seconds),
            **uvicorn_options(settings),
        )
        server = uvicorn.Server(config)
        tune_for_serving()
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
    return EXIT_OK if server.started else EXIT_ERROR
