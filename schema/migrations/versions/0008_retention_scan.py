"""The retention purge finds its tenants in the messages themselves.

It used to list tenants from channel_routes, so a tenant that had deleted its channel kept
its message bodies past retention. retention_due_tenants(cutoff) returns the ids of the
tenants that still hold a message body sent before the cutoff, and nothing else about
them. It runs as its owner (SECURITY DEFINER) and turns app.retention_scan on while it
reads; one more SELECT policy on messages admits that, for the owner role only. The app
role may call the function but matches no new policy. The purge itself still updates each
tenant's rows in that tenant's own session.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

APP_ROLE = "lodestone_app"
OPT_IN = "current_setting('app.retention_scan', true) = 'on'"


def upgrade() -> None:
    # TO CURRENT_USER: the migrating role, i.e. the owner, whatever it is called in this deployment.
    op.execute(f"CREATE POLICY retention_scan ON messages FOR SELECT TO CURRENT_USER USING ({OPT_IN})")
    # The opt-in is set inside the body: a SET clause on the function would need the right to
    # set a placeholder parameter, which a non-superuser owner lacks.
    op.execute("""
        CREATE FUNCTION retention_due_tenants(cutoff timestamptz) RETURNS SETOF uuid
        LANGUAGE plpgsql SECURITY DEFINER
        SET search_path = public, pg_temp
        AS $$
        BEGIN
            PERFORM set_config('app.retention_scan', 'on', true);
            RETURN QUERY SELECT DISTINCT m.tenant_id FROM messages m WHERE m.sent_at < cutoff AND m.body IS NOT NULL;
            PERFORM set_config('app.retention_scan', '', true);
        END $$
    """)
    op.execute("REVOKE ALL ON FUNCTION retention_due_tenants(timestamptz) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION retention_due_tenants(timestamptz) TO {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP FUNCTION retention_due_tenants(timestamptz)")
    op.execute("DROP POLICY retention_scan ON messages")
