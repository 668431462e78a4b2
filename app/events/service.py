"""The outbox: written in the caller's transaction, read back by cursor."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.db.dialect import is_postgres
from app.db.pagination import Page, make_page
from app.errors import ValidationError
from app.events.models import LIFECYCLE_TYPES, Event, EventType

CHANNEL = "modelgraph_events"
# Any constant shared by every replica; it names the lock event writers queue on.
EVENT_LOCK_KEY = 0x6D6F64656C  # "model"
LOCK_TAKEN = "modelgraph.event_lock"
LAST_SEQ = "modelgraph.last_event_seq"


async def record_event(
    session: AsyncSession,
    *,
    type: EventType,
    actor: str,
    model: str | None = None,
    version: int | None = None,
    from_stage: str | None = None,
    to_stage: str | None = None,
    alias: str | None = None,
    reason: str | None = None,
    payload: dict[str, Any] | None = None,
) -> Event:
    """Add one event to the caller's transaction, so it exists iff the change commits.

    Lifecycle events are the stream watchers follow. Only they queue on the lock and
    NOTIFY, so a sweep of run starts does not serialise the cluster."""
    postgres = is_postgres(session)
    lifecycle = type in LIFECYCLE_TYPES
    if postgres and lifecycle and not session.info.get(LOCK_TAKEN):
        # Gap hazard (docs/ARCHITECTURE.md, "Events"): a seq is taken at INSERT but seen at COMMIT. Lifecycle
        # writers take one lock until commit, so their commit order is their seq order
        # and a reader's cursor never passes a lifecycle seq that is still to commit.
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": EVENT_LOCK_KEY})
        session.info[LOCK_TAKEN] = True
    event = Event(
        type=type.value,
        actor=actor,
        model=model,
        version=version,
        from_stage=from_stage,
        to_stage=to_stage,
        alias=alias,
        reason=reason,
        payload=payload or {},
    )
    session.add(event)
    await session.flush()
    if lifecycle:
        if postgres:
            await session.execute(
                text("SELECT pg_notify(:channel, :seq)"),
                {"channel": CHANNEL, "seq": str(event.seq)},
            )
        session.info[LAST_SEQ] = event.seq
    return event


def committed_seq(session_info: dict[str, Any]) -> int | None:
    """The last lifecycle event seq a committed unit of work wrote, if it wrote any."""
    return session_info.get(LAST_SEQ)


async def list_events(
    session: AsyncSession,
    *,
    after: int,
    upto: int | None = None,
    model: str | None = None,
    types: Sequence[str] | None = None,
    limit: int,
) -> list[Event]:
    """Lifecycle events with after < seq (<= upto) that match, in seq order.

    Seq order is commit order (event writers serialise, see record_event), so a reader
    that moves its cursor to the last seq it saw never skips one committed later."""
    wanted = [t.value for t in LIFECYCLE_TYPES] if not types else [str(t) for t in types]
    stmt = select(Event).where(col(Event.seq) > after, col(Event.type).in_(wanted))
    if upto is not None:
        stmt = stmt.where(col(Event.seq) <= upto)
    if model is not None:
        stmt = stmt.where(col(Event.model) == model)
    return list((await session.execute(stmt.order_by(col(Event.seq)).limit(limit))).scalars())


async def last_seq(session: AsyncSession) -> int:
    """The highest committed lifecycle seq (0 when there is none): every lifecycle event
    up to it is readable, since lifecycle writers commit in seq order."""
    stmt = select(func.max(col(Event.seq))).where(
        col(Event.type).in_([t.value for t in LIFECYCLE_TYPES])
    )
    return (await session.execute(stmt)).scalar() or 0


async def count_events(
    session: AsyncSession,
    *,
    after: int,
    model: str | None = None,
    types: Sequence[str] | None = None,
    limit: int,
) -> int:
    """How many matching lifecycle events follow `after`, counting up to `limit`."""
    wanted = [t.value for t in LIFECYCLE_TYPES] if not types else [str(t) for t in types]
    inner = select(col(Event.seq)).where(col(Event.seq) > after, col(Event.type).in_(wanted))
    if model is not None:
        inner = inner.where(col(Event.model) == model)
    stmt = select(func.count()).select_from(inner.limit(limit).subquery())
    return (await session.execute(stmt)).scalar_one()


async def events_page(
    session: AsyncSession,
    *,
    after: int,
    model: str | None = None,
    types: Sequence[str] | None = None,
    first: int,
) -> Page[Event]:
    """A page of the lifecycle stream for pollers. When the page is the last one, its end
    is the newest committed seq, so the next poll starts past events the filters skipped."""
    newest = await last_seq(session)
    if after > newest:
        raise ValidationError("after", "is beyond the newest event: not a cursor of this stream")
    rows = await list_events(
        session, after=after, upto=newest, model=model, types=types, limit=first + 1
    )
    page = make_page([(e, e.seq) for e in rows], first, item=0, key_start=1)
    if not page.has_next and newest > after:
        page.end_key = [newest]
    return page
