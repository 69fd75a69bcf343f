"""conversations

Revision ID: 0004
Revises: 0003
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_routes",
        sa.Column("phone_number_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.PrimaryKeyConstraint("phone_number_id"),
    )
    op.create_index(op.f("ix_channel_routes_tenant_id"), "channel_routes", ["tenant_id"], unique=False)
    op.add_column("contacts", sa.Column("phone_number_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column("messages", sa.Column("client_key", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column(
        "messages", sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default="text")
    )
    op.add_column(
        "messages", sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default="received")
    )
    op.add_column("messages", sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))
    op.alter_column("messages", "message_id", existing_type=sa.VARCHAR(), nullable=True)
    op.create_index("ix_messages_contact_time", "messages", ["tenant_id", "contact_id", "sent_at"], unique=False)
    op.create_unique_constraint("messages_tenant_id_client_key_key", "messages", ["tenant_id", "client_key"])
    op.add_column("summaries", sa.Column("message_count", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("summaries", sa.Column("media_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column("summaries", sa.Column("wa_message_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column("summaries", sa.Column("model", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column("summaries", sa.Column("tokens_in", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("summaries", sa.Column("tokens_out", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("summaries", sa.Column("cost_usd", sa.Float(), nullable=False, server_default="0"))
    op.create_unique_constraint("summaries_contact_id_window_end_key", "summaries", ["contact_id", "window_end"])
    # channel_routes: every tenant may read (a webhook finds its tenant here); only the owner writes.
    cur = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"
    op.execute("ALTER TABLE channel_routes ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE channel_routes FORCE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY route_lookup ON channel_routes FOR SELECT USING (true)")
    op.execute(
        f"CREATE POLICY tenant_isolation ON channel_routes FOR ALL USING (tenant_id = {cur}) "
        f"WITH CHECK (tenant_id = {cur})"
    )
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON channel_routes TO lodestone_app")


def downgrade() -> None:
    op.drop_constraint("summaries_contact_id_window_end_key", "summaries", type_="unique")
    op.drop_column("summaries", "cost_usd")
    op.drop_column("summaries", "tokens_out")
    op.drop_column("summaries", "tokens_in")
    op.drop_column("summaries", "model")
    op.drop_column("summaries", "wa_message_id")
    op.drop_column("summaries", "media_id")
    op.drop_column("summaries", "message_count")
    op.drop_constraint("messages_tenant_id_client_key_key", "messages", type_="unique")
    op.drop_index("ix_messages_contact_time", table_name="messages")
    op.alter_column("messages", "message_id", existing_type=sa.VARCHAR(), nullable=False)
    op.drop_column("messages", "purged_at")
    op.drop_column("messages", "status")
    op.drop_column("messages", "kind")
    op.drop_column("messages", "client_key")
    op.drop_column("contacts", "phone_number_id")
    op.drop_index(op.f("ix_channel_routes_tenant_id"), table_name="channel_routes")
    op.drop_table("channel_routes")
