"""Starting a job's workflow, and the outbox that makes sure every committed job is started.
A pipeline's job runs SubmissionWorkflow, a state machine's StateMachineWorkflow (by the
kind of the definition the job runs); both take a SubmissionInput.

The API commits the job row (`pending`) and then starts the workflow, id = job id. That
start can fail after the commit: Temporal down, a timeout (perhaps after Temporal accepted
it), the API killed in between. The row is never taken back for that. Instead the worker's
sweeper finds pending jobs older than OUTBOX_START_AFTER_SECONDS whose start is not
recorded, across tenants, through outbox_due_jobs (ids only; migration 0009), and starts
each with the same input and search attributes the API uses. Every start is idempotent:
the id-reuse policy rejects a second run of a job id, and "already started" counts as
started. A job's start is recorded in jobs.workflow_started_at.

One replica sweeps at a time: a sweep runs inside a transaction holding an advisory lock,
and a replica that cannot take it skips its turn. A start Temporal refuses (not an outage)
backs the job off, twice as long each time, so it does not hold up the jobs behind it. A
job still not started OUTBOX_MAX_AGE_SECONDS after it was created is failed with a dead
letter instead: by then Temporal may have purged the history of a run it did start, and a
second start would run the job again."""

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from lodestone.db import tenant_session, unavailable
from lodestone.job_priority import job_priority
from lodestone.settings import Settings
from lodestone.temporal_client import unreachable
from schema.definition_kinds import STATE_MACHINE, kind_of
from schema.statuses import JobStatus
from schema.tables import Job, JobFailure, WorkflowDefinition, utcnow
from workflows import names
from workflows.types import SubmissionInput, job_search_attributes

log = logging.getLogger("lodestone.outbox")

BATCH = 100  # jobs one sweep query returns; a full batch is followed by another at once
LOCK = 0x4C6F64654F7574  # pg advisory lock key of the sweep (one replica at a time)
BACKOFF_CAP_SECONDS = 3600.0
NOT_STARTED = "not_started"  # the dead letter's error_code for a job the outbox gave up on


def workflow_type(definition: dict[str, Any]) -> str:
    """The workflow a job of this definition runs."""
    return names.STATE_MACHINE if kind_of(definition) == STATE_MACHINE else names.SUBMISSION


async def start_job(temporal: Client, settings: Settings, job: Job, workflow: str) -> None:
    """Start the job's workflow (`workflow`: its type, workflow_type of its definition);
    returns when Temporal has it, this time or before."""
    try:
        await temporal.start_workflow(
            workflow,
            SubmissionInput(str(job.tenant_id), str(job.id)),
            id=str(job.id),
            task_queue=settings.temporal_task_queue,
            rpc_timeout=timedelta(seconds=settings.temporal_rpc_timeout_seconds),
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=job_search_attributes(job.tenant_id, job.id, job.workflow_key),
            priority=job_priority(job.tenant_id),
        )
    except WorkflowAlreadyStartedError:
        pass  # another request, the sweeper, or a start that timed out after Temporal took it


async def record_started(engine: AsyncEngine, job: Job) -> None:
    """Take the job out of the outbox; it is only ever set, never cleared."""
    async with tenant_session(engine, job.tenant_id) as session:
        await session.execute(
            update(Job)
            .where(col(Job.id) == job.id, col(Job.workflow_started_at).is_(None))
            .values(workflow_started_at=utcnow())
        )


async def due_jobs(
    conn: AsyncConnection, older_than: timedelta, limit: int = BATCH
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(job id, tenant id) of unstarted pending jobs created before now - older_than that are
    not backing off, oldest first."""
    rows = await conn.execute(
        text("SELECT job_id, tenant_id FROM outbox_due_jobs(:cutoff, :n)"),
        {"cutoff": datetime.now(UTC) - older_than, "n": limit},
    )
    return [(r.job_id, r.tenant_id) for r in rows]


async def give_up(engine: AsyncEngine, settings: Settings, job: Job) -> None:
    """Fail a job never started within OUTBOX_MAX_AGE_SECONDS, with a dead letter."""
    message = (
        f"its workflow was not started within OUTBOX_MAX_AGE_SECONDS ({settings.outbox_max_age_seconds:g}s); "
        "it was not started then, in case Temporal had purged a run of it"
    )
    async with tenant_session(engine, job.tenant_id) as session:
        failed = await session.execute(
            update(Job)
            .where(col(Job.id) == job.id, col(Job.status) == JobStatus.pending, col(Job.workflow_started_at).is_(None))
            .values(status=JobStatus.failed, error=f"{NOT_STARTED}: {message}", updated_at=utcnow())
        )
        if failed.rowcount:  # type: ignore[attr-defined]
            await session.execute(
                insert(JobFailure)
                .values(
                    id=uuid.uuid4(),
                    tenant_id=job.tenant_id,
                    job_id=job.id,
                    error_code=NOT_STARTED,
                    message=message,
                    temporal_link=settings.workflow_link(str(job.id)),
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=["job_id"])
            )
    log.warning(
        "outbox: job %s was never started; failed it (dead letter %s)",
        job.id,
        NOT_STARTED,
        extra={"tenant_id": str(job.tenant_id)},
    )


async def back_off(engine: AsyncEngine, settings: Settings, job_id: uuid.UUID, tenant_id: uuid.UUID) -> None:
    """Temporal refused this job's start: try it again after OUTBOX_INTERVAL_SECONDS x 2^attempts."""
    async with tenant_session(engine, tenant_id) as session:
        await session.execute(
            text(
                "UPDATE jobs SET outbox_attempts = outbox_attempts + 1, outbox_retry_at = now() + "
                "make_interval(secs => LEAST(:base * power(2, outbox_attempts), :cap)) WHERE id = :id"
            ),
            {"base": settings.outbox_interval_seconds, "cap": BACKOFF_CAP_SECONDS, "id": job_id},
        )


async def start_one(
    temporal: Client, engine: AsyncEngine, settings: Settings, job_id: uuid.UUID, tenant_id: uuid.UUID
) -> bool:
    """Start the job unless it has moved on or is too old; whether it was started now."""
    async with tenant_session(engine, tenant_id) as session:
        job = await session.get(Job, job_id)
        definition = await session.get(WorkflowDefinition, job.workflow_definition_id) if job else None
    if job is None or job.status != JobStatus.pending or job.workflow_started_at is not None:
        return False  # moved on since the scan
    if utcnow() - job.created_at > timedelta(seconds=settings.outbox_max_age_seconds):
        await give_up(engine, settings, job)
        return False
    assert definition is not None  # a foreign key
    await start_job(temporal, settings, job, workflow_type(definition.definition))
    await record_started(engine, job)
    return True


async def sweep(temporal: Client, engine: AsyncEngine, settings: Settings, stop: asyncio.Event | None = None) -> int:
    """Start every due job, unless another replica is sweeping or `stop` is set; returns how
    many were started (or found started). A job whose start fails in an outage stays due,
    for the next sweep; one Temporal refuses backs off."""
    started, failed = 0, 0
    older_than = timedelta(seconds=settings.outbox_start_after_seconds)
    async with engine.connect() as conn, conn.begin():
        if not (await conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": LOCK})).scalar_one():
            return 0  # another replica holds it; the lock goes with its transaction
        outage = False
        while not outage and not (stop and stop.is_set()):
            due = await due_jobs(conn, older_than)
            handled = 0  # jobs that left the due set: started, moved on, failed or backing off
            for job_id, tenant_id in due:
                if stop and stop.is_set():
                    break
                try:
                    started += await start_one(temporal, engine, settings, job_id, tenant_id)
                except Exception as e:  # noqa: BLE001 - it stays due or backs off
                    failed += 1
                    log.warning(
                        "outbox: could not start job %s: %s",
                        job_id,
                        type(e).__name__,
                        extra={"tenant_id": str(tenant_id)},
                    )
                    # Temporal or PostgreSQL down: the rest would fail the same way, one timeout each.
                    outage = unreachable(e) or unavailable(e)
                    if outage:
                        break
                    await back_off(engine, settings, job_id, tenant_id)
                handled += 1
            if len(due) < BATCH or not handled:
                break
    if started or failed:
        log.info("outbox: %d job(s) started, %d failed to start", started, failed)
    return started


async def run_outbox(temporal: Client, engine: AsyncEngine, settings: Settings, stop: asyncio.Event) -> None:
    """Sweep every OUTBOX_INTERVAL_SECONDS until `stop` is set."""
    while not stop.is_set():
        try:
            await sweep(temporal, engine, settings, stop)
        except Exception as e:  # noqa: BLE001 - PostgreSQL down: try again next time
            log.warning("outbox sweep failed: %s", type(e).__name__)
        try:
            await asyncio.wait_for(stop.wait(), settings.outbox_interval_seconds)
        except TimeoutError:
            pass
