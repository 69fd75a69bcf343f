"""Jobs, read for the API: a filtered page, newest first, and one job with its steps, usage,
artifacts, deliveries and the failure shown while it is failed; a state-machine job also with
its path (every event, in order)."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from schema.definition_kinds import STATE_MACHINE
from schema.tables import (
    Artifact,
    Delivery,
    Job,
    JobFailure,
    JobStateEvent,
    JobStatus,
    JobStep,
    UsageRecord,
    WorkflowDefinition,
)
from services.errors import NotFound


@dataclass
class JobRecord:
    job: Job
    steps: list[JobStep]
    usage: dict[str, UsageRecord]  # by step id
    artifacts: list[Artifact]
    deliveries: list[Delivery]
    failure: JobFailure | None  # only while the job is failed
    state_machine: bool = False  # the job runs a state machine: it has a path and an output
    path: list[JobStateEvent] = field(default_factory=list)


async def page(
    session: AsyncSession,
    *,
    status: JobStatus | None,
    workflow_key: str | None,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> tuple[list[Job], bool]:
    """Up to `limit` jobs, newest first, older than `before` (created_at, id); and whether more follow."""
    query = select(Job).order_by(col(Job.created_at).desc(), col(Job.id).desc()).limit(limit + 1)
    if status:
        query = query.where(Job.status == status.value)
    if workflow_key:
        query = query.where(Job.workflow_key == workflow_key)
    if before:
        ts, ident = before
        query = query.where(or_(col(Job.created_at) < ts, (col(Job.created_at) == ts) & (col(Job.id) < ident)))
    rows = list((await session.exec(query)).all())
    return rows[:limit], len(rows) > limit


async def detail(session: AsyncSession, job_id: uuid.UUID) -> JobRecord:
    job = await session.get(Job, job_id)
    if job is None:
        raise NotFound("job", job_id)
    steps = (await session.exec(select(JobStep).where(JobStep.job_id == job_id).order_by(JobStep.started_at))).all()
    usage = {u.step_id: u for u in (await session.exec(select(UsageRecord).where(UsageRecord.job_id == job_id))).all()}
    artifacts = (await session.exec(select(Artifact).where(Artifact.job_id == job_id))).all()
    deliveries = (await session.exec(select(Delivery).where(Delivery.job_id == job_id))).all()
    failure = (await session.exec(select(JobFailure).where(JobFailure.job_id == job_id))).first()
    kind = select(WorkflowDefinition.definition["kind"].astext).where(
        WorkflowDefinition.id == job.workflow_definition_id
    )
    machine = (await session.exec(kind)).first() == STATE_MACHINE
    path: list[JobStateEvent] = []
    if machine:
        events = select(JobStateEvent).where(JobStateEvent.job_id == job_id).order_by(col(JobStateEvent.seq))
        path = list((await session.exec(events)).all())
    return JobRecord(
        job=job,
        steps=list(steps),
        usage=usage,
        artifacts=list(artifacts),
        deliveries=list(deliveries),
        # A redriven job keeps its dead letter for operators; the API shows it only while failed.
        failure=failure if job.status == JobStatus.failed else None,
        state_machine=machine,
        path=path,
    )
