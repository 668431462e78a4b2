"""Idempotency keys: a retried call with the same key returns the first answer and changes
nothing; the same key with a different request is refused. Keys belong to the caller (the
token): another token's key never answers, or blocks, this one's request.

`retry_safe` makes a service function keyed: the request's identity is every argument of
the function's signature except the session, the actor and the key itself, so a parameter
added to the function is part of the identity without being listed anywhere else.

The first answer is kept as it was, not re-read: what it showed of the state (a version's
stage then, its history then) is frozen with the key, and the first call and every retry
are answered from that frozen state alike."""

import dataclasses
import functools
import hashlib
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Generic, ParamSpec, TypeVar

from sqlalchemy import delete, func, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col, select

from app.db.dialect import core_table, upsert_insert
from app.db.types import EnumText, UTCDateTime, utcnow
from app.errors import ConflictError, check_name
from app.registry.models import (
    IdempotencyKey,
    ModelAlias,
    ModelVersion,
    StageTransition,
    Validation,
)
from app.tracking.models import Run

T = TypeVar("T")
P = ParamSpec("P")
M = TypeVar("M", bound=SQLModel)
KEY_LIMIT = 256
# Keys are kept at least this long; older ones are swept as new ones are written.
RETENTION = timedelta(hours=48)
# Session.info key: the frozen state the keyed call in this unit of work answered with.
ANSWER = "modelgraph.idempotent_answer"
# Arguments that say who asks and how to recognise a retry, not what is asked.
NOT_IDENTITY = ("session", "actor", "idempotency_key")


@dataclass(frozen=True)
class Replay(Generic[T]):
    """How a keyed call's result is kept with its key (`dump`), rebuilt for a retry (`load`)
    and, optionally, what of the state it showed is frozen with it (`freeze`)."""

    dump: Callable[[T], dict[str, Any]]
    load: Callable[[AsyncSession, dict[str, Any]], Awaitable[T]]
    freeze: Callable[[AsyncSession, T], Awaitable[dict[str, Any]]] | None = None


def retry_safe(
    operation: str, replay: Replay[T], *, unordered: Sequence[str] = ()
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """Make a service function run once per idempotency key; see the module docstring.
    Parameters named in `unordered` are sets given as sequences: the same items in another
    order are the same request."""

    def decorate(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        signature = inspect.signature(fn)
        missing = [name for name in (*NOT_IDENTITY, *unordered) if name not in signature.parameters]
        if missing:
            raise TypeError(f"{fn.__qualname__} needs parameters {', '.join(missing)}")

        @functools.wraps(fn)
        async def call(*args: P.args, **kwargs: P.kwargs) -> T:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = bound.arguments
            key = arguments["idempotency_key"]
            if key is None:
                return await fn(*args, **kwargs)
            request = {k: v for k, v in arguments.items() if k not in NOT_IDENTITY}
            for name in unordered:
                if request[name] is not None:
                    request[name] = sorted(canonical(request[name]), key=json.dumps)
            return await _once(
                arguments["session"],
                key=key,
                actor=arguments["actor"],
                operation=operation,
                request=request,
                run=lambda: fn(*args, **kwargs),
                replay=replay,
            )

        return call

    return decorate


def canonical(value: Any) -> Any:
    """`value` as plain JSON values, the same for equal requests whatever their types."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [canonical(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    # A type nobody taught this function could hash two equal requests differently.
    raise TypeError(f"cannot use a {type(value).__name__} in a retry-safe request")


def _digest(operation: str, request: dict[str, Any]) -> str:
    text = json.dumps([operation, canonical(request)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _scoped(actor: str, key: str) -> str:
    """The stored key: the caller's key within the caller's own namespace."""
    return hashlib.sha256(json.dumps([actor, key]).encode()).hexdigest()


async def _once(
    session: AsyncSession,
    *,
    key: str,
    actor: str,
    operation: str,
    request: dict[str, Any],
    run: Callable[[], Awaitable[T]],
    replay: Replay[T],
) -> T:
    """`run()` once per key: a repeat with the same request gets the first result back.
    With `replay.freeze`, what it returns of the first result's state is kept with the key
    and left in the session (`answer`) for the first call and every repeat to answer from."""
    check_name("idempotencyKey", key, KEY_LIMIT)
    shown, key = key, _scoped(actor, key)
    digest = _digest(operation, request)
    now = utcnow()
    table = core_table(IdempotencyKey)
    # Claim the key first: a concurrent call with the same key waits here (unique index)
    # until the first commits, then finds its answer instead of acting twice.
    claimed = (
        await session.execute(
            upsert_insert(session, table)
            .values(key=key, operation=operation, request_hash=digest, result={}, created_at=now)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(table.c.key)
        )
    ).scalar_one_or_none()
    if claimed is None:
        stored = (
            await session.execute(select(IdempotencyKey).where(col(IdempotencyKey.key) == key))
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
        return await replay.load(session, stored.result)
    result = await run()
    first = replay.dump(result)
    if replay.freeze is not None:
        first["asOf"] = session.info[ANSWER] = await replay.freeze(session, result)
    await session.execute(
        update(IdempotencyKey).where(col(IdempotencyKey.key) == key).values(result=first)
    )
    await session.execute(
        delete(IdempotencyKey).where(col(IdempotencyKey.created_at) < now - RETENTION)
    )
    return result


async def answered(session: AsyncSession, cls: type[M], key: Any) -> M:
    """The row a keyed call's first answer named, for a retry to answer with again; a
    ConflictError when it has been deleted since (the first answer cannot be repeated)."""
    found = await session.get(cls, key)
    if found is None:
        raise ConflictError(
            "idempotencyKey",
            f"the {cls.__name__} this key's first answer named has been deleted since; "
            "use a new key for a new request",
        )
    return found


# ---------------------------------------------------------------- the frozen answer


def row(obj: SQLModel) -> dict[str, Any]:
    """A table row's columns as JSON values, to keep with a key."""
    out: dict[str, Any] = {}
    for column in core_table(type(obj)).columns:
        value = getattr(obj, column.key)
        out[column.key] = value.isoformat() if isinstance(value, datetime) else value
    return out


def unrow(cls: type[M], data: dict[str, Any]) -> M:
    """A detached object with the columns `row` kept (never added to a session), typed as
    the columns read from the database would be."""
    columns = core_table(cls).columns
    values: dict[str, Any] = {}
    for key, value in data.items():
        kind = columns[key].type
        if value is not None and isinstance(kind, UTCDateTime):
            value = datetime.fromisoformat(value)
        elif value is not None and isinstance(kind, EnumText):
            value = kind.enum(value)
        values[key] = value
    return cls(**values)


@dataclass(frozen=True)
class AsOf:
    """The registry as a keyed call's first answer showed it, for its retries to show the
    same: the versions in the answer as they were, and how far their stage history,
    validations and aliases had got then. Objects reached from them (the model, a run's
    metrics) are read as they are now."""

    versions: dict[int, ModelVersion]
    last_transition: int
    last_validation: int
    aliases: dict[int, list[str]]
    run: Run | None = None


async def freeze(
    session: AsyncSession, version_ids: Sequence[int | None], run: Run | None = None
) -> dict[str, Any]:
    """What an answer about these versions (and run) shows now, to be shown again as is."""
    ids = sorted({i for i in version_ids if i is not None})
    versions = (
        await session.execute(select(ModelVersion).where(col(ModelVersion.id).in_(ids)))
    ).scalars()
    last_transition = (
        await session.execute(
            select(func.max(StageTransition.id)).where(col(StageTransition.version_id).in_(ids))
        )
    ).scalar_one()
    last_validation = (
        await session.execute(
            select(func.max(Validation.id)).where(col(Validation.version_id).in_(ids))
        )
    ).scalar_one()
    aliases = (
        await session.execute(
            select(ModelAlias.version_id, ModelAlias.alias)
            .where(col(ModelAlias.version_id).in_(ids))
            .order_by(col(ModelAlias.alias))
        )
    ).all()
    named: dict[str, list[str]] = {}
    for version_id, alias in aliases:
        named.setdefault(str(version_id), []).append(alias)
    return {
        "versions": [row(v) for v in versions],
        "lastTransition": last_transition or 0,
        "lastValidation": last_validation or 0,
        "aliases": named,
        "run": row(run) if run is not None else None,
    }


def answer_as_of(session: AsyncSession) -> AsOf | None:
    """The state the keyed call in this unit of work answered with (None without a key):
    a retry shows what the first answer showed, not what is stored now."""
    frozen: dict[str, Any] | None = session.info.get(ANSWER)
    if not frozen:
        return None
    versions = [unrow(ModelVersion, v) for v in frozen["versions"]]
    return AsOf(
        versions={v.id: v for v in versions if v.id is not None},
        last_transition=frozen["lastTransition"],
        last_validation=frozen["lastValidation"],
        aliases={int(k): v for k, v in frozen["aliases"].items()},
        run=unrow(Run, frozen["run"]) if frozen.get("run") else None,
    )
