"""Resumable uploads: resumable_uploads, a tenant table like the others (row-level security
ENABLEd and FORCEd, one tenant_isolation policy on tenant_id, the app role's grants), plus
one policy more: a transaction that sets app.sweep = 'on' sees and deletes the rows of
every tenant whose expires_at has passed, and no other row. The API's sweep of abandoned
uploads uses it (services/uploads_resumable.py).

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

APP_ROLE = "lodestone_app"
CURRENT_TENANT = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def upgrade() -> None:
    op.create_table(
        "resumable_uploads",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("store_upload_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_resumable_uploads_tenant_id"), "resumable_uploads", ["tenant_id"], unique=False)
    op.create_index(op.f("ix_resumable_uploads_expires_at"), "resumable_uploads", ["expires_at"], unique=False)
    op.execute("ALTER TABLE resumable_uploads ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE resumable_uploads FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON resumable_uploads "
        f"USING (tenant_id = {CURRENT_TENANT}) WITH CHECK (tenant_id = {CURRENT_TENANT})"
    )
    op.execute(
        "CREATE POLICY expired_sweep ON resumable_uploads FOR ALL "
        "USING (current_setting('app.sweep', true) = 'on' AND expires_at < now()) WITH CHECK (false)"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON resumable_uploads TO {APP_ROLE}")


def downgrade() -> None:
    op.drop_index(op.f("ix_resumable_uploads_expires_at"), table_name="resumable_uploads")
    op.drop_index(op.f("ix_resumable_uploads_tenant_id"), table_name="resumable_uploads")
    op.drop_table("resumable_uploads")
