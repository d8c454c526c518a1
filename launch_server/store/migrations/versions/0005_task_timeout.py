"""model_endpoints.task_timeout_seconds

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 04:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing endpoints get the documented default (one hour).
    with op.batch_alter_table("model_endpoints") as batch:
        batch.add_column(sa.Column("task_timeout_seconds", sa.Integer(), nullable=False, server_default="3600"))


def downgrade() -> None:
    with op.batch_alter_table("model_endpoints") as batch:
        batch.drop_column("task_timeout_seconds")
