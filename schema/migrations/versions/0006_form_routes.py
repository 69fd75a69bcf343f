"""Public form routes: slug -> tenant, readable by all, written by the owner.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

CURRENT = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def upgrade() -> None:
    op.create_table(
        "form_routes",
        sa.Column("slug", sa.String(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("slug"),
    )
    op.create_index("ix_form_routes_tenant_id", "form_routes", ["tenant_id"])
    op.execute("ALTER TABLE form_routes ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE form_routes FORCE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY route_lookup ON form_routes FOR SELECT USING (true)")
    op.execute(
        f"CREATE POLICY tenant_isolation ON form_routes FOR ALL USING (tenant_id = {CURRENT}) "
        f"WITH CHECK (tenant_id = {CURRENT})"
    )
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON form_routes TO lodestone_app")
    # Slugs are unique through form_routes now; forms keep theirs unique per tenant.
    op.drop_constraint("forms_slug_key", "forms", type_="unique")
    op.create_unique_constraint("forms_tenant_id_slug_key", "forms", ["tenant_id", "slug"])


def downgrade() -> None:
    op.drop_constraint("forms_tenant_id_slug_key", "forms", type_="unique")
    op.create_unique_constraint("forms_slug_key", "forms", ["slug"])
    op.drop_index("ix_form_routes_tenant_id", table_name="form_routes")
    op.drop_table("form_routes")
