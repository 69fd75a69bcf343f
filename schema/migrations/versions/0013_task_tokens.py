"""Task tokens of callback Tasks (schema/task_tokens.py).

task_tokens is a tenant table like the others: row-level security ENABLEd and FORCEd, one
tenant_isolation policy on tenant_id, and the app role's grants.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

APP_ROLE = "lodestone_app"
CURRENT_TENANT = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString()
    op.create_table(
        "task_tokens",
        sa.Column("token_hash", text, nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("run_id", text, nullable=False),
        sa.Column("path", text, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("state", text, nullable=False),
        sa.Column("status", text, nullable=False),
        sa.Column("approval_link", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"]),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index(op.f("ix_task_tokens_tenant_id"), "task_tokens", ["tenant_id"], unique=False)
    op.create_index(op.f("ix_task_tokens_job_id"), "task_tokens", ["job_id"], unique=False)
    op.execute("ALTER TABLE task_tokens ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE task_tokens FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON task_tokens "
        f"USING (tenant_id = {CURRENT_TENANT}) WITH CHECK (tenant_id = {CURRENT_TENANT})"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON task_tokens TO {APP_ROLE}")


def downgrade() -> None:
    op.drop_index(op.f("ix_task_tokens_job_id"), table_name="task_tokens")
    op.drop_index(op.f("ix_task_tokens_tenant_id"), table_name="task_tokens")
    op.drop_table("task_tokens")
