"""The registry grows what MLflow's model has: a version's run link and logged model,
and each model's highest version number ever given (a deleted version's number is
never reused)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "registered_model",
        sa.Column("last_version", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.execute(
        "UPDATE registered_model SET last_version = COALESCE("
        "(SELECT MAX(version) FROM model_version "
        "WHERE model_version.model_id = registered_model.id), 0)"
    )
    op.add_column("model_version", sa.Column("run_link", sa.String(length=2048)))
    op.add_column("model_version", sa.Column("logged_model_id", sa.String(length=64)))


def downgrade() -> None:
    with op.batch_alter_table("model_version") as batch:
        batch.drop_column("logged_model_id")
        batch.drop_column("run_link")
    with op.batch_alter_table("registered_model") as batch:
        batch.drop_column("last_version")
