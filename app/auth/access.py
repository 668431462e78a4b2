"""Access control for a running server: who a credential stands for, and revocations
reaching everything authenticated before them.

A token found valid is remembered for `recheck_seconds` (a read per request cost about a
third of a small query). A revocation committed through this process or announced by
PostgreSQL (every replica) forgets it at once. On SQLite another process (the CLI) can
revoke without telling anyone, so every request first reads the newest revocation's
event seq on a synchronous connection of its own (about 10 µs, against about 1 ms for a
token lookup through the async pool): when it moved, every remembered token is forgotten
and open connections are re-checked. Reading it after the revoking process committed is
enough: the first request that starts after `modelgraph token revoke` returns is refused.
A WebSocket authenticates once, at connection_init; its principal is watched, and marked
revoked and closed when its token is (the mark is also polled while connections are open).

The worker processes of one `modelgraph serve --workers N` (PostgreSQL) also share a
WorkerMark: a worker that commits a revocation bumps it before answering, and every worker
reads it before each request (about 1 µs), so a token revoked through one worker is
refused by the others at once, before their NOTIFY arrives.
"""

import asyncio
import contextlib
import fcntl
import logging
import mmap
import os
import sqlite3
import struct
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

from app.auth import service as auth_service
from app.auth.errors import AuthenticationError, PermissionDeniedError
from app.auth.roles import Principal, Role, anonymous, dev, required_role
from app.db import Database
from app.db.engine import BACKGROUND
from app.db.types import stored

log = logging.getLogger("modelgraph.auth")

OnRevoked = Callable[[], Awaitable[None]]
TOUCH_SECONDS = auth_service.LAST_USED_EVERY.total_seconds()
CACHE_ENTRIES = 10_000
# How often open connections look at the revocation mark when no request does (SQLite).
MARK_POLL_SECONDS = 0.1
# A read of the mark never waits long on a lock: one that cannot read now is "moved".
MARK_BUSY_MS = 20


@dataclass(frozen=True)
class _Valid:
    name: str
    role: Role
    token_id: int
    until: float


class MissingCredentials(AuthenticationError):
    """No credentials at all (as opposed to wrong ones)."""

    def __init__(self) -> None:
        super().__init__(
            "authentication required: send `Authorization: Bearer <token>` "
            "(on a WebSocket, in the connection_init payload)"
        )


def bearer_secret(credential: str) -> str:
    """The secret in `Bearer <secret>` (a bare secret is accepted too)."""
    scheme, _, rest = credential.strip().partition(" ")
    if rest and scheme.lower() == "bearer":
        return rest.strip()
    if not rest:
        return scheme
    raise AuthenticationError("the Authorization header must be `Bearer <token>`")


class RevocationMark:
    """The newest token revocation in a SQLite file, read synchronously on a connection of
    its own: each read is its own snapshot, so it sees every commit made before it, by any
    process. None when it cannot be read (taken as "moved": the caller looks tokens up)."""

    def __init__(self, path: str) -> None:
        self._sql = str(
            auth_service.revocation_mark().compile(
                dialect=sqlite_dialect(), compile_kwargs={"literal_binds": True}
            )
        )
        self._path = path
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        # Opened on first use, not at start-up: a server whose database cannot be opened
        # yet still starts, and says so through /readyz and its refusals.
        if self._conn is None:
            # mode=rw: never create a database file that is not there.
            conn = sqlite3.connect(
                f"file:{self._path}?mode=rw",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {MARK_BUSY_MS}")
            self._conn = conn
        return self._conn

    def read(self) -> int | None:
        try:
            row = self._connection().execute(self._sql).fetchone()
        except sqlite3.Error:
            log.warning("could not read the token revocation mark", exc_info=True)
            return None
        return int(row[0] or 0)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class WorkerMark:
    """A revocation counter in a small file that every worker of one server maps (the
    supervisor makes it, see app/cli/serve.py): bumped after a worker commits a
    revocation, read before each request. Any change means "look tokens up again"."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR)
        self._map = mmap.mmap(self._fd, 8)

    def read(self) -> int | None:
        return int(struct.unpack_from("<Q", self._map)[0])

    def bump(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # revocations are rare; two at once both count
        try:
            struct.pack_into("<Q", self._map, 0, (self.read() or 0) + 1)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


# Set in each worker process of `serve --workers N` (PostgreSQL) before its app starts.
_worker_mark_path: str | None = None


def share_revocations_between_workers(path: str) -> None:
    """This process is one of a server's workers: revocations go through the WorkerMark
    file at `path` (8 bytes, made by the supervisor)."""
    global _worker_mark_path
    _worker_mark_path = path


def make_worker_mark(path: str) -> None:
    """The supervisor's side: the file the workers will share, counting from 0."""
    with open(path, "wb") as f:
        f.write(bytes(8))


def revocation_mark_for(db: Database) -> RevocationMark | WorkerMark | None:
    """A mark for a SQLite file database, or for the workers of one PostgreSQL server;
    None elsewhere (PostgreSQL announces revocations, an in-memory database has no other
    process)."""
    if db.dialect == "postgresql" and _worker_mark_path is not None:
        return WorkerMark(_worker_mark_path)
    path = db.url.database
    if db.dialect != "sqlite" or not path or path == ":memory:" or path.startswith("file::"):
        return None
    return RevocationMark(path)


class AccessControl:
    def __init__(
        self,
        db: Database,
        *,
        dev_mode: bool = False,
        anonymous_read: bool = False,
        recheck_seconds: float = 1.0,
    ) -> None:
        self.db = db
        self.dev_mode = dev_mode
        self.anonymous_read = anonymous_read
        self.recheck_seconds = recheck_seconds
        self._watched: dict[int, dict[Principal, OnRevoked]] = {}
        self._touched: dict[int, float] = {}
        # Valid tokens by secret hash, and each token's hash, to forget it on revocation.
        self._valid: dict[str, _Valid] = {}
        self._hash_of: dict[int, str] = {}
        # Bumped by every revocation: a lookup that overlapped one is not remembered.
        self._revocations = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._recheck: asyncio.Task[None] | None = None
        self._mark: RevocationMark | WorkerMark | None = None
        self._seen_mark: int | None = None

    async def authorize(self, credential: str | None, operation: str) -> Principal:
        """The principal for an Authorization value, if its role may call `operation`
        (AuthenticationError, or PermissionDeniedError naming the role needed): the check
        the plain HTTP faces make before anything else."""
        principal = await self.principal_for(credential)
        role = required_role(operation)
        if not principal.role.includes(role):
            raise PermissionDeniedError(operation, role, principal.role)
        return principal

    async def principal_for(self, credential: str | None) -> Principal:
        """The principal for an Authorization value (None: none sent), or
        AuthenticationError (MissingCredentials when nothing was sent and it must be)."""
        if self.dev_mode:
            return dev()
        if credential is None or not credential.strip():
            if self.anonymous_read:
                return anonymous()
            raise MissingCredentials
        secret = bearer_secret(credential)
        key = auth_service.hash_secret(secret)
        self._check_mark()
        now = time.monotonic()
        known = self._valid.get(key)
        if known is not None and known.until > now:
            principal = Principal(name=known.name, role=known.role, token_id=known.token_id)
        else:
            revocations = self._revocations
            # Marked as background: who is asking is not part of what a screen asks for
            # (per-request statement counts skip it; it is cached, so it comes and goes).
            async with self.db.read(background=True) as session:
                principal, token = await auth_service.authenticate(session, secret=secret)
            if not auth_service.needs_touch(token):
                self._touched.setdefault(stored(token.id), now)
            if revocations == self._revocations:
                self._remember(key, principal, now + self.recheck_seconds)
        self._touch(principal)
        return principal

    def _remember(self, key: str, principal: Principal, until: float) -> None:
        assert principal.token_id is not None
        if len(self._valid) >= CACHE_ENTRIES:
            self._valid.clear()
            self._hash_of.clear()
        self._valid[key] = _Valid(principal.name, principal.role, principal.token_id, until)
        self._hash_of[principal.token_id] = key

    def _touch(self, principal: Principal) -> None:
        """Record the token's use in the background, at most once a minute per process."""
        assert principal.token_id is not None
        now = time.monotonic()
        if now - self._touched.get(principal.token_id, -TOUCH_SECONDS) < TOUCH_SECONDS:
            return
        self._touched[principal.token_id] = now
        self._spawn(self._write_touch(principal.token_id))

    async def _write_touch(self, token_id: int) -> None:
        try:
            async with self.db.unit_of_work() as session:
                # Marked as background: no request asked for it (per-request counts skip it).
                await session.connection(execution_options={BACKGROUND: True})
                await auth_service.touch(session, token_id=token_id)
        except Exception:  # last use is bookkeeping: it never fails a request
            log.warning("could not record a token's last use", exc_info=True)

    async def connect(
        self, credential: str | None, on_revoked: OnRevoked
    ) -> tuple[Principal, Callable[[], None]]:
        """Authenticate a long-lived connection and watch it: (principal, unwatch). A
        revocation that lands between the lookup and the watch is not missed."""
        revocations = self._revocations
        principal = await self.principal_for(credential)
        unwatch = self.watch(principal, on_revoked)
        if revocations != self._revocations and principal.token_id is not None:
            async with self.db.read() as session:
                gone = await auth_service.revoked_among(session, token_ids=[principal.token_id])
            if gone:
                unwatch()
                raise AuthenticationError("the token is not valid (unknown or revoked)")
        return principal, unwatch

    def watch(self, principal: Principal, on_revoked: OnRevoked) -> Callable[[], None]:
        """Call `on_revoked` when the principal's token is revoked; returns the unwatch."""
        token_id = principal.token_id
        if token_id is None:
            return lambda: None
        self._watched.setdefault(token_id, {})[principal] = on_revoked

        def unwatch() -> None:
            watchers = self._watched.get(token_id)
            if watchers is not None:
                watchers.pop(principal, None)
                if not watchers:
                    del self._watched[token_id]

        return unwatch

    def revoked(self, token_ids: Iterable[int]) -> None:
        """This process committed these revocations: forget them here, and tell the other
        workers of this server through the shared mark before the answer goes out."""
        token_ids = list(token_ids)
        if token_ids and isinstance(self._mark, WorkerMark):
            self._mark.bump()
        self._forget(token_ids)

    def _forget(self, token_ids: Iterable[int]) -> None:
        """These tokens were revoked: their principals stop acting now (synchronously, so
        nothing more is delivered to them), and their connections are closed."""
        for token_id in token_ids:
            self._revocations += 1
            self._touched.pop(token_id, None)
            if (key := self._hash_of.pop(token_id, None)) is not None:
                self._valid.pop(key, None)
            for principal, on_revoked in self._watched.pop(token_id, {}).items():
                principal.revoked = True
                self._spawn(on_revoked())

    def _check_mark(self) -> None:
        """If any process revoked a token since the last look, forget every remembered token
        (revocations are rare: the next requests look theirs up) and re-check open
        connections now."""
        if self._mark is None:
            return
        mark = self._mark.read()
        if mark is not None and mark == self._seen_mark:
            return
        self._seen_mark = mark
        self._revocations += 1
        self._valid.clear()
        self._hash_of.clear()
        if self._watched:
            self._spawn(self._recheck_watched())

    def on_notify(self, payload: str) -> None:
        """A revocation announced by another process (PostgreSQL NOTIFY)."""
        with contextlib.suppress(ValueError):
            self._forget([int(payload)])

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        if not self.dev_mode:
            self._mark = revocation_mark_for(self.db)
            self._seen_mark = self._mark.read() if self._mark is not None else None
        self._recheck = asyncio.create_task(self._recheck_loop())

    async def _recheck_loop(self) -> None:
        while True:
            if isinstance(self._mark, RevocationMark):
                # The mark says when a re-check is needed; reading it is cheap enough to poll.
                await asyncio.sleep(min(self.recheck_seconds, MARK_POLL_SECONDS))
                if self._watched:
                    self._check_mark()
                continue
            await asyncio.sleep(self.recheck_seconds)
            await self._recheck_watched()

    async def _recheck_watched(self) -> None:
        if not self._watched:
            return
        try:
            async with self.db.read(background=True) as session:
                gone = await auth_service.revoked_among(session, token_ids=list(self._watched))
        except Exception:  # the next round retries
            log.warning("re-checking open connections' tokens failed", exc_info=True)
            return
        self._forget(gone)

    async def close(self) -> None:
        if self._mark is not None:
            self._mark.close()
            self._mark = None
        tasks = [t for t in (self._recheck, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
