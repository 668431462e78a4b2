"""Tracking tables: experiments, runs, params, tags and metrics (MLflow-shaped ids)."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from app.db.types import EnumText, UTCDateTime, utcnow

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a bigint.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")

NAME_LIMIT = 256
KEY_LIMIT = 250
PARAM_VALUE_LIMIT = 6000
TAG_VALUE_LIMIT = 8000
EXPERIMENT_TAG_VALUE_LIMIT = 20_000
DESCRIPTION_LIMIT = 10_000
METRIC_BATCH_LIMIT = 10_000
DEFAULT_EXPERIMENT_ID = 0
DEFAULT_EXPERIMENT_NAME = "Default"
USER_LIMIT = 256
DATASET_NAME_LIMIT = 500
DATASET_DIGEST_LIMIT = 36
DATASET_SOURCE_TYPE_LIMIT = 36
DATASET_SOURCE_LIMIT = 65_535
DATASET_SCHEMA_LIMIT = 1_048_575
DATASET_PROFILE_LIMIT = 16_777_215
INPUT_TAG_KEY_LIMIT = 255
INPUT_TAG_VALUE_LIMIT = 500
# The input tag that says what a dataset was used for ("training", "eval", ...).
INPUT_CONTEXT_TAG = "mlflow.data.context"
# The run tag MLflow clients nest runs with; the run's parent_run_id follows it.
PARENT_RUN_TAG = "mlflow.parentRunId"


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


class Experiment(SQLModel, table=True):
    __tablename__ = "experiment"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(NAME_LIMIT), nullable=False, unique=True))
    description: str | None = Field(default=None, sa_column=Column(Text))
    tags: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    # When its name, tags or lifecycle last changed; None: never since it was made.
    updated_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    # Soft delete: a deleted experiment is hidden from lists by default, never lost.
    deleted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))

    @property
    def last_update_time(self) -> datetime:
        return self.updated_at or self.created_at

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


class Run(SQLModel, table=True):
    __tablename__ = "run"
    __table_args__ = (
        Index("ix_run_experiment_start", "experiment_id", "start_time", "id"),
        Index("ix_run_parent", "parent_run_id"),
    )

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    experiment_id: int = Field(
        sa_column=Column(Integer, ForeignKey("experiment.id", ondelete="CASCADE"), nullable=False)
    )
    name: str | None = Field(default=None, sa_column=Column(String(NAME_LIMIT)))
    status: RunStatus = Field(
        default=RunStatus.RUNNING, sa_column=Column(EnumText(RunStatus), nullable=False)
    )
    start_time: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    end_time: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    # Who started it, as the client said (MLflow's user_id); not the token's actor.
    user_id: str | None = Field(default=None, sa_column=Column(String(USER_LIMIT)))
    # The run this one is nested in. No foreign key: SQLite cannot add one to an existing
    # table without rebuilding it, and the service checks the parent exists when it is set.
    parent_run_id: str | None = Field(default=None, sa_column=Column(String(32)))
    # Soft delete: a deleted run is hidden from searches by default, never lost.
    deleted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


class Param(SQLModel, table=True):
    __tablename__ = "param"

    run_id: str = Field(
        sa_column=Column(String(32), ForeignKey("run.id", ondelete="CASCADE"), primary_key=True)
    )
    key: str = Field(sa_column=Column(String(KEY_LIMIT), primary_key=True))
    value: str = Field(sa_column=Column(String(PARAM_VALUE_LIMIT), nullable=False))


class RunTag(SQLModel, table=True):
    __tablename__ = "run_tag"

    run_id: str = Field(
        sa_column=Column(String(32), ForeignKey("run.id", ondelete="CASCADE"), primary_key=True)
    )
    key: str = Field(sa_column=Column(String(KEY_LIMIT), primary_key=True))
    value: str = Field(sa_column=Column(String(TAG_VALUE_LIMIT), nullable=False))


class Metric(SQLModel, table=True):
    """Full metric history, append-only. NaN is stored as value NULL with is_nan true."""

    __tablename__ = "metric"
    __table_args__ = (Index("ix_metric_history", "run_id", "key", "step", "timestamp"),)

    id: int | None = Field(default=None, sa_column=Column(BigIntId, primary_key=True))
    run_id: str = Field(
        sa_column=Column(String(32), ForeignKey("run.id", ondelete="CASCADE"), nullable=False)
    )
    key: str = Field(sa_column=Column(String(KEY_LIMIT), nullable=False))
    value: float | None = None
    is_nan: bool = False
    step: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    timestamp: int = Field(sa_column=Column(BigInteger, nullable=False))


class LatestMetric(SQLModel, table=True):
    """One row per run and key: the last value (highest step, then timestamp), min and max.

    experiment_id is copied from the run so best-run and leaderboard queries are
    index seeks on (experiment_id, key, value) rather than joins over every run.
    """

    __tablename__ = "latest_metric"
    __table_args__ = (
        Index("ix_latest_metric_last", "experiment_id", "key", "value"),
        Index("ix_latest_metric_min", "experiment_id", "key", "min_value"),
        Index("ix_latest_metric_max", "experiment_id", "key", "max_value"),
    )

    run_id: str = Field(
        sa_column=Column(String(32), ForeignKey("run.id", ondelete="CASCADE"), primary_key=True)
    )
    key: str = Field(sa_column=Column(String(KEY_LIMIT), primary_key=True))
    experiment_id: int = Field(sa_column=Column(Integer, nullable=False))
    value: float | None = None
    is_nan: bool = False
    step: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    timestamp: int = Field(sa_column=Column(BigInteger, nullable=False))
    min_value: float | None = None
    max_value: float | None = None

    @property
    def last_value(self) -> float:
        if self.is_nan or self.value is None:
            return float("nan")
        return self.value


class Dataset(SQLModel, table=True):
    """A dataset as runs used it, identified within its experiment by name and digest."""

    __tablename__ = "dataset"
    __table_args__ = (
        UniqueConstraint(
            "experiment_id", "name", "digest", name="dataset_experiment_id_name_digest_key"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(
        sa_column=Column(Integer, ForeignKey("experiment.id", ondelete="CASCADE"), nullable=False)
    )
    name: str = Field(sa_column=Column(String(DATASET_NAME_LIMIT), nullable=False))
    digest: str = Field(sa_column=Column(String(DATASET_DIGEST_LIMIT), nullable=False))
    source_type: str = Field(sa_column=Column(String(DATASET_SOURCE_TYPE_LIMIT), nullable=False))
    source: str = Field(sa_column=Column(Text, nullable=False))
    # The schema and profile as the client sent them (JSON text), or None.
    schema_: str | None = Field(default=None, sa_column=Column("schema", Text))
    profile: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )


class RunInput(SQLModel, table=True):
    """A dataset a run used, with the input's tags (its context among them)."""

    __tablename__ = "run_input"
    __table_args__ = (Index("ix_run_input_dataset", "dataset_id"),)

    run_id: str = Field(
        sa_column=Column(String(32), ForeignKey("run.id", ondelete="CASCADE"), primary_key=True)
    )
    dataset_id: int = Field(
        sa_column=Column(Integer, ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True)
    )
    # The input tag INPUT_CONTEXT_TAG, copied out so searches on it are plain comparisons.
    context: str | None = Field(default=None, sa_column=Column(String(INPUT_TAG_VALUE_LIMIT)))
    tags: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
