"""Writing the outbox. Streaming it to subscribers comes with the event bus."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.events.models import Event, EventType


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
    """Add one event to the caller's transaction, so it exists iff the change commits."""
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
    return event
