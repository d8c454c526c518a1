"""model_endpoints.max_batch_size and max_batch_wait_ms

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable with no default: existing endpoints keep their bundles' own batch limits.
    with op.batch_alter_table("model_endpoints") as batch:
        batch.add_column(sa.Column("max_batch_size", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_batch_wait_ms", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_endpoints") as batch:
        batch.drop_column("max_batch_wait_ms")
        batch.drop_column("max_batch_size")
