"""Redrive from the failed state and child executions: jobs.redrive_count (how many times the
job was redriven), jobs.parent_job_id (the job whose Task started it, for a child execution),
and job_checkpoints (a failed state machine's Task results, for its redrive), a tenant table
like the others: row-level security ENABLEd and FORCEd, one tenant_isolation policy on
tenant_id, and the app role's grants.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

APP_ROLE = "lodestone_app"
CURRENT_TENANT = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def upgrade() -> None:
    op.add_column("jobs", sa.Column("redrive_count", sa.Integer(), server_default="0", nullable=False))
    op.add_column("jobs", sa.Column("parent_job_id", sa.Uuid(), nullable=True))
    op.create_foreign_key("jobs_parent_job_id_fkey", "jobs", "jobs", ["parent_job_id"], ["id"])
    op.create_table(
        "job_checkpoints",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"]),
        sa.PrimaryKeyConstraint("job_id"),
    )
    op.create_index(op.f("ix_job_checkpoints_tenant_id"), "job_checkpoints", ["tenant_id"], unique=False)
    op.execute("ALTER TABLE job_checkpoints ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE job_checkpoints FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON job_checkpoints "
        f"USING (tenant_id = {CURRENT_TENANT}) WITH CHECK (tenant_id = {CURRENT_TENANT})"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON job_checkpoints TO {APP_ROLE}")


def downgrade() -> None:
    op.drop_index(op.f("ix_job_checkpoints_tenant_id"), table_name="job_checkpoints")
    op.drop_table("job_checkpoints")
    op.drop_constraint("jobs_parent_job_id_fkey", "jobs", type_="foreignkey")
    op.drop_column("jobs", "parent_job_id")
    op.drop_column("jobs", "redrive_count")
