"""Artifacts: content-addressed blobs, run artifact manifests and model version files

Revision ID: 0005
Revises: 0004
Create Date: 2027-01-20
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blob",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("chunk_size", sa.Integer(), nullable=False),
        sa.Column("chunks", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name="blob_pkey"),
    )
    op.create_table(
        "run_artifact",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["run.id"], name="run_artifact_run_id_fkey", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["digest"], ["blob.digest"], name="run_artifact_digest_fkey"),
        sa.PrimaryKeyConstraint("run_id", "path", name="run_artifact_pkey"),
    )
    op.create_index("ix_run_artifact_digest", "run_artifact", ["digest"], unique=False)
    op.create_table(
        "version_file",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_version.id"],
            name="version_file_version_id_fkey",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["digest"], ["blob.digest"], name="version_file_digest_fkey"),
        sa.PrimaryKeyConstraint("version_id", "path", name="version_file_pkey"),
    )
    op.create_index("ix_version_file_digest", "version_file", ["digest"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_version_file_digest", table_name="version_file")
    op.drop_table("version_file")
    op.drop_index("ix_run_artifact_digest", table_name="run_artifact")
    op.drop_table("run_artifact")
    op.drop_table("blob")
