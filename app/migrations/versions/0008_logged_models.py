"""Logged models (MLflow 3): the model a run produced, its params, tags, the runs that
output it, and its files

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "logged_model",
        sa.Column("id", sa.String(length=34), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("source_run_id", sa.String(length=32)),
        sa.Column("model_type", sa.String(length=256)),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_message", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiment.id"],
            name="logged_model_experiment_id_fkey",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["source_run_id"],
            ["run.id"],
            name="logged_model_source_run_id_fkey",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="logged_model_pkey"),
    )
    op.create_index(
        "ix_logged_model_experiment_created",
        "logged_model",
        ["experiment_id", "created_at", "id"],
        unique=False,
    )
    op.create_index("ix_logged_model_source_run", "logged_model", ["source_run_id"], unique=False)
    op.create_table(
        "logged_model_param",
        sa.Column("model_id", sa.String(length=34), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.String(length=6000), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["logged_model.id"],
            name="logged_model_param_model_id_fkey",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "key", name="logged_model_param_pkey"),
    )
    op.create_table(
        "logged_model_tag",
        sa.Column("model_id", sa.String(length=34), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["logged_model.id"],
            name="logged_model_tag_model_id_fkey",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "key", name="logged_model_tag_pkey"),
    )
    op.create_table(
        "logged_model_output",
        sa.Column("model_id", sa.String(length=34), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["logged_model.id"],
            name="logged_model_output_model_id_fkey",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["run.id"], name="logged_model_output_run_id_fkey", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("model_id", "run_id", name="logged_model_output_pkey"),
    )
    op.create_index("ix_logged_model_output_run", "logged_model_output", ["run_id"], unique=False)
    op.create_table(
        "logged_model_artifact",
        sa.Column("model_id", sa.String(length=34), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["logged_model.id"],
            name="logged_model_artifact_model_id_fkey",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["digest"], ["blob.digest"], name="logged_model_artifact_digest_fkey"
        ),
        sa.PrimaryKeyConstraint("model_id", "path", name="logged_model_artifact_pkey"),
    )
    op.create_index(
        "ix_logged_model_artifact_digest", "logged_model_artifact", ["digest"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_logged_model_artifact_digest", table_name="logged_model_artifact")
    op.drop_table("logged_model_artifact")
    op.drop_index("ix_logged_model_output_run", table_name="logged_model_output")
    op.drop_table("logged_model_output")
    op.drop_table("logged_model_tag")
    op.drop_table("logged_model_param")
    op.drop_index("ix_logged_model_source_run", table_name="logged_model")
    op.drop_index("ix_logged_model_experiment_created", table_name="logged_model")
    op.drop_table("logged_model")
