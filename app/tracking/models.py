"""Tracking tables: experiments, runs, params, tags and metrics (MLflow-shaped ids)."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from app.db.types import EnumText, UTCDateTime, utcnow

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a bigint.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")

NAME_LIMIT = 256
KEY_LIMIT = 250
PARAM_VALUE_LIMIT = 6000
TAG_VALUE_LIMIT = 8000
DESCRIPTION_LIMIT = 10_000
METRIC_BATCH_LIMIT = 10_000
DEFAULT_EXPERIMENT_ID = 0
DEFAULT_EXPERIMENT_NAME = "Default"


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


class Run(SQLModel, table=True):
    __tablename__ = "run"
    __table_args__ = (Index("ix_run_experiment_start", "experiment_id", "start_time", "id"),)

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
