"""Registry tables: registered models, their versions, aliases and the stage audit trail."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlmodel import Field, SQLModel

from app.db.types import EnumText, UTCDateTime, utcnow
from app.registry.stages import Stage
from app.tracking.models import BigIntId

MODEL_NAME_LIMIT = 256
SOURCE_LIMIT = 2048
REASON_LIMIT = 1000
ALIAS_LIMIT = 256
CHECK_LIMIT = 256


class RegisteredModel(SQLModel, table=True):
    __tablename__ = "registered_model"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(MODEL_NAME_LIMIT), nullable=False, unique=True))
    description: str | None = Field(default=None, sa_column=Column(Text))
    tags: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    # The highest version number ever given, so a deleted version's number is never reused.
    last_version: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default=text("0"))
    )


class ModelVersion(SQLModel, table=True):
    __tablename__ = "model_version"
    __table_args__ = (
        UniqueConstraint("model_id", "version", name="uq_model_version"),
        # The database itself keeps at most one PRODUCTION version per model.
        Index(
            "uq_model_version_one_production",
            "model_id",
            unique=True,
            sqlite_where=text("stage = 'PRODUCTION'"),
            postgresql_where=text("stage = 'PRODUCTION'"),
        ),
        Index("ix_model_version_run", "run_id"),
        Index("ix_model_version_stage", "model_id", "stage", "version"),
    )

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("registered_model.id", ondelete="CASCADE"), nullable=False
        )
    )
    version: int = Field(nullable=False)
    run_id: str | None = Field(
        default=None, sa_column=Column(String(32), ForeignKey("run.id", ondelete="SET NULL"))
    )
    source: str | None = Field(default=None, sa_column=Column(String(SOURCE_LIMIT)))
    # A link to the run that made it elsewhere (MLflow's run_link), as the caller gave it.
    run_link: str | None = Field(default=None, sa_column=Column(String(SOURCE_LIMIT)))
    # The logged model (MLflow 3 `models:/m-…`) the version was registered from, if any.
    logged_model_id: str | None = Field(default=None, sa_column=Column(String(64)))
    digest: str | None = Field(default=None, sa_column=Column(String(128)))
    stage: Stage = Field(
        default=Stage.DEVELOPMENT, sa_column=Column(EnumText(Stage), nullable=False)
    )
    description: str | None = Field(default=None, sa_column=Column(Text))
    tags: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )


class ModelAlias(SQLModel, table=True):
    __tablename__ = "model_alias"

    model_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("registered_model.id", ondelete="CASCADE"), primary_key=True
        )
    )
    alias: str = Field(sa_column=Column(String(ALIAS_LIMIT), primary_key=True))
    version_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("model_version.id", ondelete="CASCADE"), nullable=False
        )
    )


class StageTransition(SQLModel, table=True):
    __tablename__ = "stage_transition"
    __table_args__ = (
        Index("ix_stage_transition_model", "model_id", "id"),
        Index("ix_stage_transition_version", "version_id", "id"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigIntId, primary_key=True))
    model_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("registered_model.id", ondelete="CASCADE"), nullable=False
        )
    )
    version_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("model_version.id", ondelete="CASCADE"), nullable=False
        )
    )
    from_stage: Stage = Field(sa_column=Column(EnumText(Stage), nullable=False))
    to_stage: Stage = Field(sa_column=Column(EnumText(Stage), nullable=False))
    actor: str = Field(sa_column=Column(String(256), nullable=False))
    reason: str | None = Field(default=None, sa_column=Column(Text))
    # True for the move that restored a version by rollback (the history is a stack).
    rollback: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )
    # The promotion policy this move passed (its conditions then), when one applied.
    policy: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class IdempotencyKey(SQLModel, table=True):
    """The first answer to a retried mutation, by the key its caller chose."""

    __tablename__ = "idempotency_key"
    __table_args__ = (Index("ix_idempotency_key_created", "created_at"),)

    key: str = Field(sa_column=Column(String(256), primary_key=True))
    operation: str = Field(sa_column=Column(String(64), nullable=False))
    request_hash: str = Field(sa_column=Column(String(64), nullable=False))
    result: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )


class ValidationStatus(StrEnum):
    PASSED = "PASSED"
    FAILED = "FAILED"
    PENDING = "PENDING"


class Validation(SQLModel, table=True):
    """One reported result of a named check (tests, an audit) on a version; history kept."""

    __tablename__ = "validation"
    __table_args__ = (Index("ix_validation_version_check", "version_id", "check", "id"),)

    id: int | None = Field(default=None, sa_column=Column(BigIntId, primary_key=True))
    version_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("model_version.id", ondelete="CASCADE"), nullable=False
        )
    )
    check: str = Field(sa_column=Column(String(CHECK_LIMIT), nullable=False))
    status: ValidationStatus = Field(sa_column=Column(EnumText(ValidationStatus), nullable=False))
    details_url: str | None = Field(default=None, sa_column=Column(String(SOURCE_LIMIT)))
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    actor: str = Field(sa_column=Column(String(256), nullable=False))
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class PromotionPolicy(SQLModel, table=True):
    """What a version must satisfy to move into a stage (STAGING or PRODUCTION)."""

    __tablename__ = "promotion_policy"

    model_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("registered_model.id", ondelete="CASCADE"), primary_key=True
        )
    )
    stage: Stage = Field(sa_column=Column(EnumText(Stage), primary_key=True))
    required_checks: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # [{"metric": "accuracy", "op": "GTE", "value": 0.9}, ...] on the run's latest values
    metric_rules: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    # {"metric": "auc", "goal": "MAXIMIZE"}: must beat the PRODUCTION version's run
    must_beat_production: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    actor: str = Field(sa_column=Column(String(256), nullable=False))
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
