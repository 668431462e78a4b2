"""API tokens. Only a hash of each secret is stored; the secret is shown once."""

from datetime import datetime

from sqlalchemy import Column, Index, Integer, String
from sqlmodel import Field, SQLModel

from app.db.types import UTCDateTime, utcnow

TOKEN_NAME_LIMIT = 64


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"
    __table_args__ = (Index("ix_api_token_revoked", "revoked_at"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    # Names are never reused, so an actor name in the audit trail means one token.
    name: str = Field(sa_column=Column(String(TOKEN_NAME_LIMIT), nullable=False, unique=True))
    role: str = Field(sa_column=Column(String(16), nullable=False))
    # sha256 of the secret, hex; the lookup key of every authenticated request.
    secret_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    # The secret's first characters, so an operator can tell which token a leak was.
    prefix: str = Field(sa_column=Column(String(16), nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    created_by: str = Field(sa_column=Column(String(256), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    revoked_by: str | None = Field(default=None, sa_column=Column(String(256)))
    last_used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
