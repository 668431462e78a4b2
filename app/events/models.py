"""The Event table: the outbox every state change writes in its own transaction."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, String, Text
from sqlmodel import Field, SQLModel

from app.db.types import UTCDateTime, utcnow
from app.tracking.models import BigIntId


class EventType(StrEnum):
    EXPERIMENT_CREATED = "EXPERIMENT_CREATED"
    RUN_STARTED = "RUN_STARTED"
    RUN_ENDED = "RUN_ENDED"
    PARAMS_LOGGED = "PARAMS_LOGGED"
    RUN_TAGS_SET = "RUN_TAGS_SET"
    METRICS_LOGGED = "METRICS_LOGGED"
    ARTIFACTS_LOGGED = "ARTIFACTS_LOGGED"
    ARTIFACT_DELETED = "ARTIFACT_DELETED"
    MODEL_CREATED = "MODEL_CREATED"
    MODEL_UPDATED = "MODEL_UPDATED"
    MODEL_RENAMED = "MODEL_RENAMED"
    MODEL_DELETED = "MODEL_DELETED"
    VERSION_REGISTERED = "VERSION_REGISTERED"
    VERSION_UPDATED = "VERSION_UPDATED"
    VERSION_DELETED = "VERSION_DELETED"
    STAGE_CHANGED = "STAGE_CHANGED"
    MODEL_ROLLED_BACK = "MODEL_ROLLED_BACK"
    ALIAS_SET = "ALIAS_SET"
    ALIAS_DELETED = "ALIAS_DELETED"
    VALIDATION_RECORDED = "VALIDATION_RECORDED"
    TOKEN_CREATED = "TOKEN_CREATED"
    TOKEN_REVOKED = "TOKEN_REVOKED"
    EXPERIMENT_UPDATED = "EXPERIMENT_UPDATED"
    EXPERIMENT_DELETED = "EXPERIMENT_DELETED"
    EXPERIMENT_RESTORED = "EXPERIMENT_RESTORED"
    RUN_UPDATED = "RUN_UPDATED"
    RUN_RESUMED = "RUN_RESUMED"
    RUN_DELETED = "RUN_DELETED"
    RUN_RESTORED = "RUN_RESTORED"
    RUN_TAG_DELETED = "RUN_TAG_DELETED"
    INPUTS_LOGGED = "INPUTS_LOGGED"
    LOGGED_MODEL_CREATED = "LOGGED_MODEL_CREATED"
    LOGGED_MODEL_UPDATED = "LOGGED_MODEL_UPDATED"
    LOGGED_MODEL_DELETED = "LOGGED_MODEL_DELETED"


class LifecycleEventType(StrEnum):
    """The registry's lifecycle: what deployment watchers subscribe to."""

    MODEL_CREATED = "MODEL_CREATED"
    MODEL_UPDATED = "MODEL_UPDATED"
    MODEL_RENAMED = "MODEL_RENAMED"
    MODEL_DELETED = "MODEL_DELETED"
    VERSION_REGISTERED = "VERSION_REGISTERED"
    VERSION_UPDATED = "VERSION_UPDATED"
    VERSION_DELETED = "VERSION_DELETED"
    STAGE_CHANGED = "STAGE_CHANGED"
    MODEL_ROLLED_BACK = "MODEL_ROLLED_BACK"
    ALIAS_SET = "ALIAS_SET"
    ALIAS_DELETED = "ALIAS_DELETED"
    VALIDATION_RECORDED = "VALIDATION_RECORDED"


LIFECYCLE_TYPES = tuple(EventType(t.value) for t in LifecycleEventType)


class Event(SQLModel, table=True):
    __tablename__ = "event"
    __table_args__ = (
        Index("ix_event_model_seq", "model", "seq"),
        Index("ix_event_type_seq", "type", "seq"),
    )

    seq: int | None = Field(default=None, sa_column=Column(BigIntId, primary_key=True))
    type: str = Field(sa_column=Column(String(32), nullable=False))
    model: str | None = Field(default=None, sa_column=Column(String(256)))
    version: int | None = None
    from_stage: str | None = Field(default=None, sa_column=Column(String(16)))
    to_stage: str | None = Field(default=None, sa_column=Column(String(16)))
    alias: str | None = Field(default=None, sa_column=Column(String(256)))
    actor: str = Field(sa_column=Column(String(256), nullable=False))
    reason: str | None = Field(default=None, sa_column=Column(Text))
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
