"""idempotency keys, validations and promotion policies

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_key",
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("idempotency_key", schema=None) as batch_op:
        batch_op.create_index("ix_idempotency_key_created", ["created_at"], unique=False)
    op.create_table(
        "validation",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("check", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("details_url", sa.String(length=2048), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(length=256), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["model_version.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("validation", schema=None) as batch_op:
        batch_op.create_index(
            "ix_validation_version_check", ["version_id", "check", "id"], unique=False
        )
    with op.batch_alter_table("stage_transition", schema=None) as batch_op:
        batch_op.add_column(sa.Column("policy", sa.JSON(), nullable=True))
    op.create_table(
        "promotion_policy",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("required_checks", sa.JSON(), nullable=False),
        sa.Column("metric_rules", sa.JSON(), nullable=False),
        sa.Column("must_beat_production", sa.JSON(), nullable=True),
        sa.Column("actor", sa.String(length=256), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["registered_model.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model_id", "stage"),
    )


def downgrade() -> None:
    op.drop_table("promotion_policy")
    with op.batch_alter_table("stage_transition", schema=None) as batch_op:
        batch_op.drop_column("policy")
    with op.batch_alter_table("validation", schema=None) as batch_op:
        batch_op.drop_index("ix_validation_version_check")
    op.drop_table("validation")
    with op.batch_alter_table("idempotency_key", schema=None) as batch_op:
        batch_op.drop_index("ix_idempotency_key_created")
    op.drop_table("idempotency_key")
