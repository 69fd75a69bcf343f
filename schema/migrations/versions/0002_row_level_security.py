"""Row-level security on every tenant table, and grants for the app role.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

# Frozen here: later migrations guard the tables they add themselves.
TENANT_TABLES = [
    "workflow_definitions",
    "forms",
    "submissions",
    "jobs",
    "job_steps",
    "artifacts",
    "usage_records",
    "deliveries",
    "delivery_attempts",
    "job_failures",
    "idempotency_keys",
    "contacts",
    "messages",
    "summaries",
]

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

APP_ROLE = "lodestone_app"
# NULLIF: after a transaction-local set_config ends, the setting reads '' rather than NULL.
CURRENT_TENANT = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def guard(table: str, column: str) -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} "
        f"USING ({column} = {CURRENT_TENANT}) WITH CHECK ({column} = {CURRENT_TENANT})"
    )


def upgrade() -> None:
    op.execute(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') "
        f"THEN CREATE ROLE {APP_ROLE} NOLOGIN; END IF; END $$"
    )
    guard("tenants", "id")
    for table in TENANT_TABLES:
        guard(table, "tenant_id")
    tables = ", ".join(["tenants", *TENANT_TABLES])
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO {APP_ROLE}")


def downgrade() -> None:
    for table in ["tenants", *TENANT_TABLES]:
        op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    tables = ", ".join(["tenants", *TENANT_TABLES])
    op.execute(f"REVOKE ALL ON {tables} FROM {APP_ROLE}")
