"""State-machine jobs: job_state_events (each job's path, in order by seq) and jobs.output.

job_state_events is a tenant table like the others: row-level security ENABLEd and FORCEd,
one tenant_isolation policy on tenant_id, and the app role's grants. (job_id, seq) is unique,
so a retried record_machine_events writes each event once. jobs.output holds a state-machine
job's output once it succeeded; NULL for pipeline jobs.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

APP_ROLE = "lodestone_app"
CURRENT_TENANT = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def upgrade() -> None:
    op.add_column("jobs", sa.Column("output", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.create_table(
        "job_state_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("path", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("input", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("output", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("cause", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column("delay_seconds", sa.Float(), nullable=True),
        sa.Column("next", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "seq"),
    )
    op.create_index(op.f("ix_job_state_events_tenant_id"), "job_state_events", ["tenant_id"], unique=False)
    op.execute("ALTER TABLE job_state_events ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE job_state_events FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON job_state_events "
        f"USING (tenant_id = {CURRENT_TENANT}) WITH CHECK (tenant_id = {CURRENT_TENANT})"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON job_state_events TO {APP_ROLE}")


def downgrade() -> None:
    op.drop_index(op.f("ix_job_state_events_tenant_id"), table_name="job_state_events")
    op.drop_table("job_state_events")
    op.drop_column("jobs", "output")
