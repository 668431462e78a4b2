"""CI validations: the results checks (tests, audits) report on a version."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.types import utcnow
from app.errors import check_key, check_length, check_name
from app.events.models import EventType
from app.events.service import record_event
from app.registry import catalog, idempotency
from app.registry.idempotency import Replay, retry_safe
from app.registry.models import CHECK_LIMIT, SOURCE_LIMIT, Validation, ValidationStatus
from app.tracking.models import KEY_LIMIT


async def _load(session: AsyncSession, stored: dict[str, Any]) -> Validation:
    return await idempotency.answered(session, Validation, stored["validation"])


async def _freeze(session: AsyncSession, validation: Validation) -> dict[str, Any]:
    return await idempotency.freeze(session, [validation.version_id])


VALIDATION_REPLAY: Replay[Validation] = Replay(
    dump=lambda v: {"validation": v.id}, load=_load, freeze=_freeze
)


@retry_safe("recordValidation", VALIDATION_REPLAY)
async def record_validation(
    session: AsyncSession,
    *,
    model: str,
    version: int,
    check: str,
    status: ValidationStatus,
    details_url: str | None = None,
    metrics: dict[str, float] | None = None,
    idempotency_key: str | None = None,
    actor: str,
) -> Validation:
    """Record a CI check's result on a version (latest per check wins; history is kept)."""
    check_name("check", check, CHECK_LIMIT)
    check_length("detailsUrl", details_url, SOURCE_LIMIT)
    metrics = metrics or {}
    for key in metrics:
        check_key("metrics.key", key, KEY_LIMIT)
    registered = await catalog.require_model(session, name=model, lock=True)
    found = await catalog.require_version(session, model=registered, version=version)
    assert found.id is not None, "a stored version has its id"
    validation = Validation(
        version_id=found.id,
        check=check,
        status=status,
        details_url=details_url,
        metrics=metrics,
        actor=actor,
        at=utcnow(),
    )
    session.add(validation)
    await session.flush()
    await record_event(
        session,
        type=EventType.VALIDATION_RECORDED,
        actor=actor,
        model=model,
        version=version,
        reason=f"{check}: {status.value}",
        payload={"check": check, "status": status.value, "detailsUrl": details_url},
    )
    return validation
