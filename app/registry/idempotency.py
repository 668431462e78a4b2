"""Idempotency keys: a retried call with the same key returns the first answer and
changes nothing; the same key with a different request is refused. Keys belong to the
caller (the token): another token's key never answers, or blocks, this one's request."""

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.dialect import upsert_insert
from app.db.types import utcnow
from app.errors import ConflictError, check_name
from app.registry.models import IdempotencyKey

T = TypeVar("T")
KEY_LIMIT = 256
# Keys are kept at least this long; older ones are swept as new ones are written.
RETENTION = timedelta(hours=48)


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
) -> T:
    """`run()` once per key: a repeat with the same request gets `load(first result)`."""
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
        return await load(stored.result)
    result = await run()
    await session.execute(
        update(IdempotencyKey).where(IdempotencyKey.key == key).values(result=dump(result))
    )
    await session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < now - RETENTION))
    return result
