"""A job's priority (jobs.priority, 1 first to 5 last, 3 when a submission names none): the
order of its tenant's jobs waiting for a running slot (activities/running_slots.py), so the
waiting jobs' index leads with it (docs/fairness.md).

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
    _waiting_index(["tenant_id", "priority", "created_at", "id"])


def downgrade() -> None:
    _waiting_index(["tenant_id", "created_at", "id"])
    op.drop_constraint("jobs_priority_range", "jobs", type_="check")
    op.drop_column("jobs", "priority")


def _waiting_index(columns: list[str]) -> None:
    op.drop_index("ix_jobs_slot_waiting", table_name="jobs")
    op.create_index(
        "ix_jobs_slot_waiting",
        "jobs",
        columns,
        postgresql_where=sa.text("status = 'queued' AND slot_at IS NULL AND parent_job_id IS NULL"),
    )
