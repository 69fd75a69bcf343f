"""Cancelling a job: one implementation for POST /v1/jobs/{id}/cancel and `lodestone ops cancel`.

A job whose workflow runs is cancelled through Temporal (workflow id = job id): the run stops
its running activities and child workflows, sends no further delivery attempt, and marks the
job and its open steps `cancelled` itself (workflows/cancellation.py); until then the answer
is `cancelling`. A `pending` job whose start is not recorded (the outbox has not started it)
is cancelled in the database at once: the outbox starts only pending jobs, and a start
already on its way (the API's own, or a sweep's) finds the job cancelled at its first status
write and ends without running anything. Its run, should one have started meanwhile, is also
asked to cancel. Cancelling again answers the same; a job that finished otherwise is refused."""

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities import events
from lodestone.db import tenant_session
from schema.statuses import TERMINAL, JobStatus
from schema.tables import Job, utcnow
from services.errors import Conflict, NotFound

CANCELLING = "cancelling"  # the run was asked to stop; the job says `cancelled` once it has
JOB_FINISHED = "job_finished"


@dataclass
class Cancelled:
    job_id: str
    status: str  # "cancelled" or CANCELLING


async def cancel_job(temporal: Client, engine: AsyncEngine, job_id: uuid.UUID, *, tenant: uuid.UUID) -> Cancelled:
    """Cancel the tenant's job; NotFound for another tenant's or none, Conflict (JOB_FINISHED)
    for a job that already ended other than cancelled."""
    async with tenant_session(engine, tenant) as session:
        job = await session.get(Job, job_id, with_for_update=True)
        if job is None:
            raise NotFound("job", job_id)
        _refuse_finished(job)
        unstarted = job.status == JobStatus.pending and job.workflow_started_at is None
        if unstarted:
            job.status, job.updated_at = JobStatus.cancelled, utcnow()
            session.add(job)
            await events.status_changed(session, str(tenant), str(job_id), JobStatus.cancelled, None)
        status = job.status
    if status == JobStatus.cancelled and not unstarted:
        return Cancelled(str(job_id), status)
    try:
        await temporal.get_workflow_handle(str(job_id)).cancel()
    except RPCError as e:
        if e.status != RPCStatusCode.NOT_FOUND:
            raise
        if not unstarted:  # the run ended meanwhile: the job says how
            return await _ended(engine, job_id, tenant)
    return Cancelled(str(job_id), JobStatus.cancelled if unstarted else CANCELLING)


async def _ended(engine: AsyncEngine, job_id: uuid.UUID, tenant: uuid.UUID) -> Cancelled:
    async with tenant_session(engine, tenant) as session:
        job = await session.get(Job, job_id)
    assert job is not None  # it was there a moment ago; jobs are not deleted
    _refuse_finished(job)
    return Cancelled(str(job_id), job.status if job.status == JobStatus.cancelled else CANCELLING)


def _refuse_finished(job: Job) -> None:
    if job.status in TERMINAL and job.status != JobStatus.cancelled:
        raise Conflict(JOB_FINISHED, f"job {job.id} is {job.status}; only a job that has not finished can be cancelled")
