"""The job outbox: jobs.workflow_started_at, and a cross-tenant scan of unstarted jobs.

The API commits a job row as `pending` and then starts its workflow. When that start fails
(Temporal down, a timeout, the API killed in between) the row stays, and the worker's
outbox sweeper starts it later. workflow_started_at is set once Temporal has accepted the
start (or said it already had it); it is NULL for rows written before this migration,
which the sweeper then starts or finds started, once.

outbox_due_jobs(cutoff, max_rows) returns the ids and tenant ids of pending jobs created
before the cutoff whose start is not recorded, and nothing else about them. Like 0008's
retention scan it runs as its owner (SECURITY DEFINER) and turns app.outbox_scan on while
it reads; one more SELECT policy on jobs admits that, for the owner role only. The sweeper
reads and starts each job in that job's own tenant session.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

APP_ROLE = "lodestone_app"
OPT_IN = "current_setting('app.outbox_scan', true) = 'on'"
UNSTARTED = "status = 'pending' AND workflow_started_at IS NULL"


def upgrade() -> None:
    op.add_column("jobs", sa.Column("workflow_started_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(f"CREATE INDEX ix_jobs_outbox ON jobs (created_at) WHERE {UNSTARTED}")
    # TO CURRENT_USER: the migrating role, i.e. the owner, whatever it is called in this deployment.
    op.execute(f"CREATE POLICY outbox_scan ON jobs FOR SELECT TO CURRENT_USER USING ({OPT_IN})")
    op.execute("""
        CREATE FUNCTION outbox_due_jobs(cutoff timestamptz, max_rows integer)
        RETURNS TABLE (job_id uuid, tenant_id uuid)
        LANGUAGE plpgsql SECURITY DEFINER
        SET search_path = public, pg_temp
        AS $$
        BEGIN
            PERFORM set_config('app.outbox_scan', 'on', true);
            RETURN QUERY SELECT j.id, j.tenant_id FROM jobs j
                WHERE j.status = 'pending' AND j.workflow_started_at IS NULL AND j.created_at < cutoff
                ORDER BY j.created_at LIMIT max_rows;
            PERFORM set_config('app.outbox_scan', '', true);
        END $$
    """)
    op.execute("REVOKE ALL ON FUNCTION outbox_due_jobs(timestamptz, integer) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION outbox_due_jobs(timestamptz, integer) TO {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP FUNCTION outbox_due_jobs(timestamptz, integer)")
    op.execute("DROP POLICY outbox_scan ON jobs")
    op.execute("DROP INDEX ix_jobs_outbox")
    op.drop_column("jobs", "workflow_started_at")
