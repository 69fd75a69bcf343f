"""Named LLM providers per tenant (tenants.llm_providers), and on each usage row the provider
that answered and the models asked before it that did not (usage_records.provider, fallbacks).

Revision ID: 0017
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0017"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "tenants",
        sa.Column(
            "llm_providers",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
    )
    op.add_column("usage_records", sa.Column("provider", sa.String(), nullable=False, server_default="default"))
    op.add_column(
        "usage_records",
        sa.Column(
            "fallbacks",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            server_default=sa.text("'[]'::jsonb"),
        ),
    )


def downgrade() -> None:
    op.drop_column("usage_records", "fallbacks")
    op.drop_column("usage_records", "provider")
    op.drop_column("tenants", "llm_providers")
