"""The job outbox: jobs.workflow_started_at, and a cross-tenant scan of unstarted jobs.

The API commits a job row as `pending` and then starts its workflow. When that start fails
(Temporal down, a timeout, the API killed in between) the row stays, and the worker's
outbox sweeper starts it later. workflow_started_at is set once Temporal has accepted the
start (or said it already had it). Rows older than a minute when this migration runs get
created_at: before it the API started every job it kept in the same request, and once
Temporal has purged a run's history a second start would run the job again (say one an
operator terminated before its first activity). Younger rows stay NULL, so the sweeper
starts or finds started the few whose request was still in flight.

outbox_attempts and outbox_retry_at back off a job whose start keeps failing for a reason
other than an outage (Temporal refusing it), so it does not hold up the jobs behind it.

outbox_due_jobs(cutoff, max_rows) returns the ids and tenant ids of pending jobs created
before the cutoff whose start is not recorded and not backing off, oldest first, and
nothing else about them. Whatever the caller passes, it lists no job younger than
MIN_AGE (a job whose API request may still be starting it) and at most MAX_ROWS. Like 0008's
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
MIN_AGE = "3 seconds"  # TEMPORAL_RPC_TIMEOUT_SECONDS' default: the API's own start is over by then
MAX_ROWS = 1000


def upgrade() -> None:
    op.add_column("jobs", sa.Column("workflow_started_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("jobs", sa.Column("outbox_attempts", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("jobs", sa.Column("outbox_retry_at", sa.DateTime(timezone=True), nullable=True))
    # The owner is subject to row-level security too (FORCE): lift it for this one update,
    # inside the migration's transaction.
    op.execute("ALTER TABLE jobs NO FORCE ROW LEVEL SECURITY")
    op.execute("UPDATE jobs SET workflow_started_at = created_at WHERE created_at < now() - interval '1 minute'")
    op.execute("ALTER TABLE jobs FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE INDEX ix_jobs_outbox ON jobs (created_at) WHERE {UNSTARTED}")
    # TO CURRENT_USER: the migrating role, i.e. the owner, whatever it is called in this deployment.
    op.execute(f"CREATE POLICY outbox_scan ON jobs FOR SELECT TO CURRENT_USER USING ({OPT_IN})")
    op.execute(f"""
        CREATE FUNCTION outbox_due_jobs(cutoff timestamptz, max_rows integer)
        RETURNS TABLE (job_id uuid, tenant_id uuid)
        LANGUAGE plpgsql SECURITY DEFINER
        SET search_path = public, pg_temp
        AS $$
        BEGIN
            PERFORM set_config('app.outbox_scan', 'on', true);
            RETURN QUERY SELECT j.id, j.tenant_id FROM jobs j
                WHERE j.status = 'pending' AND j.workflow_started_at IS NULL
                  AND j.created_at < LEAST(cutoff, now() - interval '{MIN_AGE}')
                  AND (j.outbox_retry_at IS NULL OR j.outbox_retry_at <= now())
                ORDER BY j.created_at LIMIT LEAST(GREATEST(max_rows, 0), {MAX_ROWS});
            PERFORM set_config('app.outbox_scan', '', true);
        END $$
    """)
    op.execute("REVOKE ALL ON FUNCTION outbox_due_jobs(timestamptz, integer) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION outbox_due_jobs(timestamptz, integer) TO {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP FUNCTION outbox_due_jobs(timestamptz, integer)")
    op.execute("DROP POLICY outbox_scan ON jobs")
    op.execute("DROP INDEX ix_jobs_outbox")
    op.drop_column("jobs", "outbox_retry_at")
    op.drop_column("jobs", "outbox_attempts")
    op.drop_column("jobs", "workflow_started_at")
