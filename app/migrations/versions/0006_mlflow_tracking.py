"""Tracking grows what MLflow's model has: soft-deleted experiments and runs, the time an
experiment last changed, run users and parents, datasets and run inputs

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("experiment", sa.Column("updated_at", sa.DateTime(timezone=True)))
    op.add_column("experiment", sa.Column("deleted_at", sa.DateTime(timezone=True)))
    op.add_column("run", sa.Column("user_id", sa.String(length=256)))
    op.add_column("run", sa.Column("deleted_at", sa.DateTime(timezone=True)))
    op.add_column("run", sa.Column("parent_run_id", sa.String(length=32)))
    op.create_index("ix_run_parent", "run", ["parent_run_id"], unique=False)
    op.create_table(
        "dataset",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("digest", sa.String(length=36), nullable=False),
        sa.Column("source_type", sa.String(length=36), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("schema", sa.Text()),
        sa.Column("profile", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiment.id"],
            name="dataset_experiment_id_fkey",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="dataset_pkey"),
        sa.UniqueConstraint(
            "experiment_id", "name", "digest", name="dataset_experiment_id_name_digest_key"
        ),
    )
    op.create_table(
        "run_input",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("context", sa.String(length=500)),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["run.id"], name="run_input_run_id_fkey", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["dataset.id"], name="run_input_dataset_id_fkey", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "dataset_id", name="run_input_pkey"),
    )
    op.create_index("ix_run_input_dataset", "run_input", ["dataset_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_run_input_dataset", table_name="run_input")
    op.drop_table("run_input")
    op.drop_table("dataset")
    op.drop_index("ix_run_parent", table_name="run")
    op.drop_column("run", "parent_run_id")
    op.drop_column("run", "deleted_at")
    op.drop_column("run", "user_id")
    op.drop_column("experiment", "deleted_at")
    op.drop_column("experiment", "updated_at")
