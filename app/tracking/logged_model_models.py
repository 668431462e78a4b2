"""Logged model tables: a model a run produced (MLflow 3's LoggedModel), its params, tags
and the runs that output it. Its files are in app/artifacts (LoggedModelArtifact)."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from app.db.types import EnumText, UTCDateTime, utcnow
from app.tracking.models import KEY_LIMIT, NAME_LIMIT, PARAM_VALUE_LIMIT

# `m-` and 32 hexadecimal digits, as MLflow spells a logged model's id.
MODEL_ID_LENGTH = 34
MODEL_TYPE_LIMIT = 256
LOGGED_MODEL_TAG_VALUE_LIMIT = 8000
STATUS_MESSAGE_LIMIT = 10_000


class LoggedModelStatus(StrEnum):
    """PENDING while its files are uploaded; READY once complete; FAILED if the upload was not."""

    PENDING = "PENDING"
    READY = "READY"
    FAILED = "FAILED"


class LoggedModel(SQLModel, table=True):
    __tablename__ = "logged_model"
    __table_args__ = (
        Index("ix_logged_model_experiment_created", "experiment_id", "created_at", "id"),
        Index("ix_logged_model_source_run", "source_run_id"),
    )

    id: str = Field(sa_column=Column(String(MODEL_ID_LENGTH), primary_key=True))
    experiment_id: int = Field(
        sa_column=Column(Integer, ForeignKey("experiment.id", ondelete="CASCADE"), nullable=False)
    )
    name: str = Field(sa_column=Column(String(NAME_LIMIT), nullable=False))
    # The model outlives a deleted run's row in MLflow too; the link is then cleared.
    source_run_id: str | None = Field(
        default=None,
        sa_column=Column(String(32), ForeignKey("run.id", ondelete="SET NULL")),
    )
    model_type: str | None = Field(default=None, sa_column=Column(String(MODEL_TYPE_LIMIT)))
    status: LoggedModelStatus = Field(
        default=LoggedModelStatus.PENDING,
        sa_column=Column(EnumText(LoggedModelStatus), nullable=False),
    )
    status_message: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    # Deleted models are hidden, never lost: their rows and files stay.
    deleted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


class LoggedModelParam(SQLModel, table=True):
    """Written once per key: a model's params describe how it was made."""

    __tablename__ = "logged_model_param"

    model_id: str = Field(
        sa_column=Column(
            String(MODEL_ID_LENGTH),
            ForeignKey("logged_model.id", ondelete="CASCADE"),
            primary_key=True,
        )
    )
    key: str = Field(sa_column=Column(String(KEY_LIMIT), primary_key=True))
    value: str = Field(sa_column=Column(String(PARAM_VALUE_LIMIT), nullable=False))


class LoggedModelTag(SQLModel, table=True):
    __tablename__ = "logged_model_tag"

    model_id: str = Field(
        sa_column=Column(
            String(MODEL_ID_LENGTH),
            ForeignKey("logged_model.id", ondelete="CASCADE"),
            primary_key=True,
        )
    )
    key: str = Field(sa_column=Column(String(KEY_LIMIT), primary_key=True))
    value: str = Field(sa_column=Column(Text, nullable=False))


class LoggedModelOutput(SQLModel, table=True):
    """A run produced the model at a step; the model's metrics are the run's at that step."""

    __tablename__ = "logged_model_output"
    __table_args__ = (Index("ix_logged_model_output_run", "run_id"),)

    model_id: str = Field(
        sa_column=Column(
            String(MODEL_ID_LENGTH),
            ForeignKey("logged_model.id", ondelete="CASCADE"),
            primary_key=True,
        )
    )
    run_id: str = Field(
        sa_column=Column(String(32), ForeignKey("run.id", ondelete="CASCADE"), primary_key=True)
    )
    step: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
