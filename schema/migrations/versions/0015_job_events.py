"""Job events: job_events, each job's progress (status changes, steps, states, LLM tokens,
artifacts, delivery attempts, its end) in order by seq, 1, 2, 3... per job with no gaps, as
GET /v1/jobs/{id}/events streams them. A tenant table like the others: row-level security
ENABLEd and FORCEd, one tenant_isolation policy on tenant_id, and the app role's grants. Its
rows go with their job (ON DELETE CASCADE). data is `json`, not `jsonb`: its keys stay in
the order they were written, as the stream sends them.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

APP_ROLE = "lodestone_app"
CURRENT_TENANT = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def upgrade() -> None:
    op.create_table(
        "job_events",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "seq"),
    )
    op.create_index(op.f("ix_job_events_tenant_id"), "job_events", ["tenant_id"], unique=False)
    op.execute("ALTER TABLE job_events ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE job_events FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON job_events "
        f"USING (tenant_id = {CURRENT_TENANT}) WITH CHECK (tenant_id = {CURRENT_TENANT})"
    )
    op.execute(f"GRANT SELECT, INSERT, DELETE ON job_events TO {APP_ROLE}")


def downgrade() -> None:
    op.drop_index(op.f("ix_job_events_tenant_id"), table_name="job_events")
    op.drop_table("job_events")
