"""Running slots: jobs.slot_at, when a job took one of its tenant's running slots (NULL: it
holds none; a slot is held while the job is not terminal), and tenants.slots_checked_at, when
the tenant's waiting jobs last looked for runs that ended without their cleanup (terminated or
timed out). Partial indexes keep the two counts a claim makes small (activities/running_slots.py).

Revision ID: 0022
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0020"
branch_labels = None
depends_on = None

TERMINAL = "('delivered', 'succeeded', 'failed', 'cancelled')"


def upgrade() -> None:
    op.add_column("jobs", sa.Column("slot_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tenants", sa.Column("slots_checked_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_jobs_slot_held",
        "jobs",
        ["tenant_id"],
        postgresql_where=sa.text(f"slot_at IS NOT NULL AND status NOT IN {TERMINAL}"),
    )
    op.create_index(
        "ix_jobs_slot_waiting",
        "jobs",
        ["tenant_id", "created_at", "id"],
        postgresql_where=sa.text("status = 'queued' AND slot_at IS NULL AND parent_job_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_slot_waiting", table_name="jobs")
    op.drop_index("ix_jobs_slot_held", table_name="jobs")
    op.drop_column("tenants", "slots_checked_at")
    op.drop_column("jobs", "slot_at")
