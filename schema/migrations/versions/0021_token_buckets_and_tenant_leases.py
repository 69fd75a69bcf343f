"""One token bucket table for every rate (lodestone/token_bucket.py): send_rate_buckets becomes
token_buckets, keyed by (tenant, kind, key) — kind 'sms'|'whatsapp' with the country calling
code as key (the rows kept), 'submissions' and 'form_submissions' with an empty key. And
tenant_leases (lodestone/tenant_slots.py): the LLM calls and PDF renders in flight per tenant,
one row per slot, each held until released or until it expires. Both are tenant tables like
the others (row-level security ENABLEd and FORCEd, one tenant_isolation policy on
tenant_id, the app role's grants); the renamed table keeps its policy and grants.

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

APP_ROLE = "lodestone_app"
CURRENT_TENANT = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def upgrade() -> None:
    op.rename_table("send_rate_buckets", "token_buckets")
    op.alter_column("token_buckets", "channel", new_column_name="kind")
    op.alter_column("token_buckets", "prefix", new_column_name="key")
    op.execute("ALTER INDEX send_rate_buckets_pkey RENAME TO token_buckets_pkey")

    op.create_table(
        "tenant_leases",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("holder", sa.Uuid(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("tenant_id", "kind", "slot"),
    )
    op.execute("ALTER TABLE tenant_leases ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE tenant_leases FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON tenant_leases "
        f"USING (tenant_id = {CURRENT_TENANT}) WITH CHECK (tenant_id = {CURRENT_TENANT})"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_leases TO {APP_ROLE}")


def downgrade() -> None:
    op.drop_table("tenant_leases")
    op.execute("DELETE FROM token_buckets WHERE kind NOT IN ('sms', 'whatsapp')")
    op.execute("ALTER INDEX token_buckets_pkey RENAME TO send_rate_buckets_pkey")
    op.alter_column("token_buckets", "key", new_column_name="prefix")
    op.alter_column("token_buckets", "kind", new_column_name="channel")
    op.rename_table("token_buckets", "send_rate_buckets")
