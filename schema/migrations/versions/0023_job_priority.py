"""A job's priority (jobs.priority, 1 first to 5 last, 3 when a submission names none): the
priority key its workflow starts with; the tenant is the fairness key (docs/fairness.md).

Revision ID: 0023
Revises: 0022
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.add_column("jobs", sa.Column("priority", sa.SmallInteger(), server_default="3", nullable=False))
    op.create_check_constraint("jobs_priority_range", "jobs", "priority BETWEEN 1 AND 5")


def downgrade() -> None:
    op.drop_constraint("jobs_priority_range", "jobs", type_="check")
    op.drop_column("jobs", "priority")
