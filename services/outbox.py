"""Starting a job's SubmissionWorkflow, and the outbox that makes sure every committed job
is started.

The API commits the job row (`pending`) and then starts the workflow, id = job id. That
start can fail after the commit: Temporal down, a timeout (perhaps after Temporal accepted
it), the API killed in between. The row is never taken back for that. Instead the worker's
sweeper finds pending jobs older than OUTBOX_START_AFTER_SECONDS whose start is not
recorded, across tenants, through outbox_due_jobs (ids only; migration 0009), and starts
each with the same input and search attributes the API uses. Every start is idempotent:
the id-reuse policy rejects a second run of a job id, and "already started" counts as
started. A job's start is recorded in jobs.workflow_started_at."""

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from lodestone.db import tenant_session, unavailable
from lodestone.settings import Settings
from lodestone.temporal_client import unreachable
from schema.statuses import JobStatus
from schema.tables import Job, utcnow
from workflows.names import SUBMISSION
from workflows.types import SubmissionInput, job_search_attributes

log = logging.getLogger("lodestone.outbox")

BATCH = 100  # jobs one sweep query returns; a full batch is followed by another at once


async def start_job(temporal: Client, settings: Settings, job: Job) -> None:
    """Start the job's workflow; returns when Temporal has it, this time or before."""
    try:
        await temporal.start_workflow(
            SUBMISSION, SubmissionInput(str(job.tenant_id), str(job.id)),
            id=str(job.id), task_queue=settings.temporal_task_queue,
            rpc_timeout=timedelta(seconds=settings.temporal_rpc_timeout_seconds),
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=job_search_attributes(job.tenant_id, job.id, job.workflow_key))
    except WorkflowAlreadyStartedError:
        pass  # another request, the sweeper, or a start that timed out after Temporal took it


async def record_started(engine: AsyncEngine, job: Job) -> None:
    """Take the job out of the outbox; it is only ever set, never cleared."""
    async with tenant_session(engine, job.tenant_id) as session:
        await session.execute(update(Job).where(col(Job.id) == job.id, col(Job.workflow_started_at).is_(None))
                              .values(workflow_started_at=utcnow()))


async def due_jobs(engine: AsyncEngine, older_than: timedelta, limit: int = BATCH) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(job id, tenant id) of unstarted pending jobs created before now - older_than, oldest first."""
    async with AsyncSession(engine) as session, session.begin():
        rows = await session.execute(text("SELECT job_id, tenant_id FROM outbox_due_jobs(:cutoff, :n)"),
                                     {"cutoff": datetime.now(UTC) - older_than, "n": limit})
        return [(r.job_id, r.tenant_id) for r in rows]


async def start_one(temporal: Client, engine: AsyncEngine, settings: Settings, job_id: uuid.UUID,
                    tenant_id: uuid.UUID) -> bool:
    async with tenant_session(engine, tenant_id) as session:
        job = await session.get(Job, job_id)
    if job is None or job.status != JobStatus.pending or job.workflow_started_at is not None:
        return False  # moved on since the scan
    await start_job(temporal, settings, job)
    await record_started(engine, job)
    return True


async def sweep(temporal: Client, engine: AsyncEngine, settings: Settings) -> int:
    """Start every due job; returns how many were started (or found started). A job whose
    start fails stays due, for the next sweep."""
    started, failed = 0, 0
    older_than = timedelta(seconds=settings.outbox_start_after_seconds)
    while True:
        due = await due_jobs(engine, older_than)
        progress = 0
        for job_id, tenant_id in due:
            try:
                progress += await start_one(temporal, engine, settings, job_id, tenant_id)
            except Exception as e:  # noqa: BLE001 - the next sweep tries again
                failed += 1
                log.warning("outbox: could not start job %s: %s", job_id, type(e).__name__,
                            extra={"tenant_id": str(tenant_id)})
                # Temporal or PostgreSQL down: the rest would fail the same way, one timeout each.
                if unreachable(e) or unavailable(e):
                    break
        started += progress
        if len(due) < BATCH or failed or not progress:
            break
    if started or failed:
        log.info("outbox: %d job(s) started, %d failed to start", started, failed)
    return started


async def run_outbox(temporal: Client, engine: AsyncEngine, settings: Settings, stop: asyncio.Event) -> None:
    """Sweep every OUTBOX_INTERVAL_SECONDS until `stop` is set."""
    while not stop.is_set():
        try:
            await sweep(temporal, engine, settings)
        except Exception as e:  # noqa: BLE001 - PostgreSQL down: try again next time
            log.warning("outbox sweep failed: %s", type(e).__name__)
        try:
            await asyncio.wait_for(stop.wait(), settings.outbox_interval_seconds)
        except TimeoutError:
            pass
