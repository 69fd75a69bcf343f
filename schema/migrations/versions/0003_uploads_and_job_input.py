"""uploads and job input

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "uploads",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("content_type", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_uploads_tenant_id"), "uploads", ["tenant_id"], unique=False)
    op.alter_column("artifacts", "size", existing_type=sa.INTEGER(), type_=sa.BigInteger(), existing_nullable=False)
    op.add_column("jobs", sa.Column("input_key", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column("submissions", sa.Column("input_upload_id", sa.Uuid(), nullable=True))
    op.add_column("submissions", sa.Column("input_url", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.create_foreign_key("submissions_input_upload_id_fkey", "submissions", "uploads", ["input_upload_id"], ["id"])
    op.add_column("tenants", sa.Column("upload_limit_bytes", sa.BigInteger(), nullable=True))
    cur = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"
    op.execute("ALTER TABLE uploads ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE uploads FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON uploads USING (tenant_id = {cur}) WITH CHECK (tenant_id = {cur})")
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON uploads TO lodestone_app")


def downgrade() -> None:
    op.drop_column("tenants", "upload_limit_bytes")
    op.drop_constraint("submissions_input_upload_id_fkey", "submissions", type_="foreignkey")
    op.drop_column("submissions", "input_url")
    op.drop_column("submissions", "input_upload_id")
    op.drop_column("jobs", "input_key")
    op.alter_column("artifacts", "size", existing_type=sa.BigInteger(), type_=sa.INTEGER(), existing_nullable=False)
    op.drop_index(op.f("ix_uploads_tenant_id"), table_name="uploads")
    op.drop_table("uploads")
