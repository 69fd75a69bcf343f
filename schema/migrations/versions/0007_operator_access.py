"""Operator access for `lodestone ops`: job_failures.redriven_at, and a read-only,
opt-in, cross-tenant read for the owner role through the operator_dead_letters view.

Row-level security stays ENABLEd and FORCEd on every table. The owner role (the one that
runs migrations and DATABASE_ADMIN_URL) gets one more SELECT policy on the four tables the
operator CLI looks up by id or lists across tenants, and only in a transaction that has set
app.operator to 'on' (services.operator_db.operator_session also makes that transaction read
only). The app role matches none of these policies and has no grant on the view.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OPERATOR_TABLES = ["tenants", "jobs", "job_failures", "deliveries"]
OPT_IN = "current_setting('app.operator', true) = 'on'"


def upgrade() -> None:
    op.add_column("job_failures", sa.Column("redriven_at", sa.DateTime(timezone=True), nullable=True))
    for table in OPERATOR_TABLES:
        # TO CURRENT_USER: the migrating role, i.e. the owner, whatever it is called in this deployment.
        op.execute(f"CREATE POLICY operator_read ON {table} FOR SELECT TO CURRENT_USER USING ({OPT_IN})")
    # security_invoker: the view reads as its caller, so the policies above decide what it shows.
    op.execute("""
        CREATE VIEW operator_dead_letters WITH (security_invoker = true) AS
        SELECT f.id, f.job_id, f.tenant_id, t.name AS tenant_name, j.workflow_key, j.status AS job_status,
               f.failed_step, f.error_code, f.message, f.temporal_link, f.created_at, f.redriven_at
        FROM job_failures f
        JOIN jobs j ON j.id = f.job_id
        JOIN tenants t ON t.id = f.tenant_id
    """)
    op.execute("REVOKE ALL ON operator_dead_letters FROM PUBLIC")


def downgrade() -> None:
    op.execute("DROP VIEW operator_dead_letters")
    for table in OPERATOR_TABLES:
        op.execute(f"DROP POLICY operator_read ON {table}")
    op.drop_column("job_failures", "redriven_at")
