"""A delivery keeps its last error.

A target whose attempts ran out used to stay `pending` with its reason only in its last
delivery_attempts row; now it is `failed` and the row carries the last attempt's error, as
GET /v1/jobs/{id} shows it (also while the target is still being retried).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("error", sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    op.drop_column("deliveries", "error")
