"""The lifecycle stream: events as GraphQL objects, resolvable to their versions."""

from datetime import datetime

import strawberry

from app.db.pagination import SortKey, decode_cursor
from app.db.types import stored
from app.events.models import Event, LifecycleEventType
from app.events.replay import event_cursor
from app.graphql.context import Ctx
from app.graphql.registry import types as registry_types
from app.registry import reads as registry_reads
from app.registry.models import ValidationStatus
from app.registry.stages import Stage

strawberry.enum(LifecycleEventType, description="What happened to a model or version.")

SEQ_KEYS = [SortKey(Event.seq)]


def cursor_seq(cursor: str | None, field: str = "after") -> int | None:
    """The seq inside an event cursor (None for none), or InvalidInput naming `field`."""
    return None if cursor is None else decode_cursor(cursor, SEQ_KEYS, field=field)[0]


@strawberry.type(description="One committed lifecycle change, in commit order.")
class LifecycleEvent:
    cursor: str = strawberry.field(description="Opaque and monotonic: resume after it.")
    type: LifecycleEventType
    model: str
    version_number: int | None
    from_stage: Stage | None
    to_stage: Stage | None
    alias: str | None
    actor: str
    reason: str | None
    at: datetime
    check: str | None = strawberry.field(description="VALIDATION_RECORDED: the check's name.")
    check_status: ValidationStatus | None = strawberry.field(
        description="VALIDATION_RECORDED: its result."
    )
    policy: registry_types.PassedPolicy | None = strawberry.field(
        description="STAGE_CHANGED: the promotion policy the move passed, if one applied."
    )

    @classmethod
    def of(cls, e: Event) -> "LifecycleEvent":
        return cls(
            cursor=event_cursor(stored(e.seq)),
            type=LifecycleEventType(e.type),
            model=e.model or "",
            version_number=e.version,
            from_stage=Stage(e.from_stage) if e.from_stage else None,
            to_stage=Stage(e.to_stage) if e.to_stage else None,
            alias=e.alias,
            actor=e.actor,
            reason=e.reason,
            at=e.at,
            check=(e.payload or {}).get("check"),
            policy=registry_types.PassedPolicy.of((e.payload or {}).get("policy")),
            check_status=ValidationStatus(e.payload["status"])
            if (e.payload or {}).get("status") in ValidationStatus.__members__
            else None,
        )

    def fanout_key(self) -> str:
        """The same for every watcher of this event: its execution may be shared."""
        return self.cursor

    @strawberry.field(description="The version, as it is now (with its run and metrics).")
    async def version(self, info: Ctx) -> registry_types.ModelVersion | None:
        if self.version_number is None:
            return None
        found = await info.context.load_shared(
            "version_by_number",
            lambda s, keys: registry_reads.versions_by_numbers(s, keys=keys),
            (self.model, self.version_number),
        )
        return registry_types.ModelVersion.of(found) if found else None
