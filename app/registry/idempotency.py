"""Idempotency keys: a retried call with the same key returns the first answer and
changes nothing; the same key with a different request is refused. Keys belong to the
caller (the token): another token's key never answers, or blocks, this one's request.

The first answer is kept as it was, not re-read: what it showed of the state (a
version's stage then, its history then) is frozen with the key, and the first call and
every retry are answered from that frozen state alike."""

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from app.db.dialect import upsert_insert
from app.db.types import UTCDateTime, utcnow
from app.errors import ConflictError, check_name
from app.registry.models import IdempotencyKey

T = TypeVar("T")
M = TypeVar("M", bound=SQLModel)
KEY_LIMIT = 256
# Keys are kept at least this long; older ones are swept as new ones are written.
RETENTION = timedelta(hours=48)
# Session.info key: the frozen state the keyed call in this unit of work answered with.
ANSWER = "modelgraph.idempotent_answer"


def row(obj: SQLModel) -> dict[str, Any]:
    """A table row's columns as JSON values, to keep with a key."""
    out: dict[str, Any] = {}
    for column in obj.__table__.columns:  # type: ignore[attr-defined]
        value = getattr(obj, column.key)
        out[column.key] = value.isoformat() if isinstance(value, datetime) else value
    return out


def unrow(cls: type[M], data: dict[str, Any]) -> M:
    """A detached object with the columns `row` kept (never added to a session)."""
    columns = cls.__table__.columns  # type: ignore[attr-defined]
    values = {
        key: datetime.fromisoformat(value)
        if value is not None and isinstance(columns[key].type, UTCDateTime)
        else value
        for key, value in data.items()
    }
    return cls(**values)


def answer(session: AsyncSession) -> dict[str, Any] | None:
    """The frozen state the keyed call in this unit of work answered with, if any."""
    return session.info.get(ANSWER)


def _scoped(actor: str, key: str) -> str:
    """The stored key: the caller's key within the caller's own namespace."""
    return hashlib.sha256(json.dumps([actor, key]).encode()).hexdigest()


def _digest(operation: str, request: dict[str, Any]) -> str:
    canonical = json.dumps([operation, request], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def once(
    session: AsyncSession,
    *,
    key: str | None,
    actor: str,
    operation: str,
    request: dict[str, Any],
    run: Callable[[], Awaitable[T]],
    dump: Callable[[T], dict[str, Any]],
    load: Callable[[dict[str, Any]], Awaitable[T]],
    freeze: Callable[[T], Awaitable[dict[str, Any]]] | None = None,
) -> T:
    """`run()` once per key: a repeat with the same request gets `load(first result)`.
    With `freeze`, what it returns of the first result's state is kept with the key and
    left in the session (`answer`) for the first call and every repeat to answer from."""
    if key is None:
        return await run()
    check_name("idempotencyKey", key, KEY_LIMIT)
    shown, key = key, _scoped(actor, key)
    digest = _digest(operation, request)
    now = utcnow()
    # Claim the key first: a concurrent call with the same key waits here (unique index)
    # until the first commits, then finds its answer instead of acting twice.
    claimed = (
        await session.execute(
            upsert_insert(session, IdempotencyKey.__table__)
            .values(key=key, operation=operation, request_hash=digest, result={}, created_at=now)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(IdempotencyKey.__table__.c.key)
        )
    ).scalar_one_or_none()
    if claimed is None:
        stored = (
            await session.execute(select(IdempotencyKey).where(IdempotencyKey.key == key))
        ).scalar_one()
        if stored.request_hash != digest:
            raise ConflictError(
                "idempotencyKey",
                f"key {shown!r} was used for a different request ({stored.operation}); "
                "use a new key for a new request",
                expected=stored.operation,
                actual=operation,
            )
        session.info[ANSWER] = stored.result.get("asOf")
        return await load(stored.result)
    result = await run()
    first = dump(result)
    if freeze is not None:
        first["asOf"] = session.info[ANSWER] = await freeze(result)
    await session.execute(
        update(IdempotencyKey).where(IdempotencyKey.key == key).values(result=first)
    )
    await session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < now - RETENTION))
    return result
