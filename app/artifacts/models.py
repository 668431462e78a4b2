"""Artifact tables: content (Blob, once per SHA-256) and the manifests naming it."""

from datetime import datetime

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, LargeBinary, String
from sqlmodel import Field, SQLModel

from app.db.types import UTCDateTime, utcnow

PATH_LIMIT = 1024
DIGEST_LENGTH = 64
# Verified unit of a download: a range read fetches the whole chunks covering it.
CHUNK_SIZE = 4 * 1024 * 1024


class Blob(SQLModel, table=True):
    __tablename__ = "blob"

    digest: str = Field(sa_column=Column(String(DIGEST_LENGTH), primary_key=True))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    chunk_size: int = Field(sa_column=Column(Integer, nullable=False))
    # The 32-byte SHA-256 of each chunk, concatenated.
    chunks: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    # Refreshed by every upload of this content: gc leaves recently claimed blobs alone.
    last_seen: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )


class RunArtifact(SQLModel, table=True):
    __tablename__ = "run_artifact"
    # gc asks "does anything reference this digest?" per blob.
    __table_args__ = (Index("ix_run_artifact_digest", "digest"),)

    run_id: str = Field(
        sa_column=Column(String(32), ForeignKey("run.id", ondelete="CASCADE"), primary_key=True)
    )
    path: str = Field(sa_column=Column(String(PATH_LIMIT), primary_key=True))
    digest: str = Field(
        sa_column=Column(String(DIGEST_LENGTH), ForeignKey("blob.digest"), nullable=False)
    )
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )


class VersionFile(SQLModel, table=True):
    """A model version's file set: written once when the version is registered."""

    __tablename__ = "version_file"
    __table_args__ = (Index("ix_version_file_digest", "digest"),)

    version_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("model_version.id", ondelete="CASCADE"), primary_key=True
        )
    )
    path: str = Field(sa_column=Column(String(PATH_LIMIT), primary_key=True))
    digest: str = Field(
        sa_column=Column(String(DIGEST_LENGTH), ForeignKey("blob.digest"), nullable=False)
    )
    size: int = Field(sa_column=Column(BigInteger, nullable=False))


class LoggedModelArtifact(SQLModel, table=True):
    """A logged model's files (MLflow 3's model directory: MLmodel, weights, environment)."""

    __tablename__ = "logged_model_artifact"
    __table_args__ = (Index("ix_logged_model_artifact_digest", "digest"),)

    model_id: str = Field(
        sa_column=Column(
            String(34), ForeignKey("logged_model.id", ondelete="CASCADE"), primary_key=True
        )
    )
    path: str = Field(sa_column=Column(String(PATH_LIMIT), primary_key=True))
    digest: str = Field(
        sa_column=Column(String(DIGEST_LENGTH), ForeignKey("blob.digest"), nullable=False)
    )
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
