"""Send rate buckets: one token bucket per (tenant, channel, country calling code) for sms
and whatsapp deliveries (lodestone/send_rate.py), a tenant table like the others (row-level
security ENABLEd and FORCEd, one tenant_isolation policy on tenant_id, the app role's grants).

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

APP_ROLE = "lodestone_app"
CURRENT_TENANT = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def upgrade() -> None:
    op.create_table(
        "send_rate_buckets",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("prefix", sa.String(), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("tenant_id", "channel", "prefix"),
    )
    op.execute("ALTER TABLE send_rate_buckets ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE send_rate_buckets FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON send_rate_buckets "
        f"USING (tenant_id = {CURRENT_TENANT}) WITH CHECK (tenant_id = {CURRENT_TENANT})"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON send_rate_buckets TO {APP_ROLE}")


def downgrade() -> None:
    op.drop_table("send_rate_buckets")
