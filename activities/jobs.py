"""Job bookkeeping in PostgreSQL: the plan, status transitions, the dead-letter row, and the
end of a cancelled job."""

import uuid
from dataclasses import dataclass, field

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col
from temporalio import activity

from activities import errors, events, running_slots
from activities.common import fail, job_row, load_job
from activities.delivery import webhook_timeout
from lodestone.db import tenant_session
from lodestone.metrics import JOB_DURATION
from lodestone.settings import Settings
from schema.dag import step_dependencies
from schema.statuses import TERMINAL, JobStatus
from schema.tables import Delivery, JobFailure, JobStep, Submission, utcnow


@dataclass
class JobRef:
    tenant_id: str
    job_id: str


@dataclass
class JobPlan:
    # step id -> the step ids it waits for
    dependencies: dict[str, list[str]]
    outputs: list[str]
    delivery_targets: int
    max_parallel_steps: int
    input_url: str | None = None
    # The type of each delivery target ("webhook", "email"); a plan without it (recorded
    # before email targets existed) has only webhooks.
    delivery_kinds: list[str] = field(default_factory=list)
    # Each target's webhook timeout in seconds (0 for email), and the attempt budgets, from the
    # definition and settings; a plan without them (recorded earlier) keeps the built-in ones.
    delivery_timeouts: list[float] = field(default_factory=list)
    step_max_attempts: int = 0
    delivery_max_attempts: int = 0


@dataclass
class JobStatusInput:
    tenant_id: str
    job_id: str
    status: str


@dataclass
class CancelledInput:
    tenant_id: str
    job_id: str


CANCELLED_STEP = "cancelled: the job was cancelled"
OPEN_STEP = ("pending", "running", "retrying")


@dataclass
class FailureInput:
    tenant_id: str
    job_id: str
    error_code: str
    message: str
    failed_step: str | None = None


class JobActivities:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    @activity.defn
    async def load_plan(self, ref: JobRef) -> JobPlan:
        async with tenant_session(self.engine, ref.tenant_id) as session:
            loaded = await load_job(session, ref.job_id)
            submission = await session.get(Submission, loaded.job.submission_id)  # loaded above: no query
        d = loaded.definition
        return JobPlan(
            dependencies=step_dependencies(d["steps"]),
            outputs=d.get("outputs", ["html"]),
            delivery_targets=len(d.get("delivery", [])),
            max_parallel_steps=self.settings.step_concurrency,
            input_url=submission.input_url if submission and not loaded.job.input_key else None,
            delivery_kinds=[t["type"] for t in d.get("delivery", [])],
            delivery_timeouts=[
                webhook_timeout(self.settings, t) if t["type"] == "webhook" else 0.0 for t in d.get("delivery", [])
            ],
            step_max_attempts=self.settings.step_max_attempts,
            delivery_max_attempts=self.settings.delivery_max_attempts,
        )

    @activity.defn
    async def set_status(self, inp: JobStatusInput) -> None:
        async with tenant_session(self.engine, inp.tenant_id) as session:
            job = await job_row(session, inp.job_id)
            if job.status == JobStatus.cancelled:
                # Cancelled while its start was on its way (POST /v1/jobs/{id}/cancel on a job the
                # outbox or the API had not started yet): the run stops before doing anything.
                raise fail(errors.JOB_CANCELLED, f"job {inp.job_id} was cancelled before its workflow began")
            if job.status in TERMINAL:
                return
            changed = job.status != inp.status  # a retry after the commit emits nothing twice
            job.status, job.updated_at = inp.status, utcnow()
            session.add(job)
            if changed:
                await events.status_changed(session, inp.tenant_id, inp.job_id, inp.status, None)
        if inp.status in TERMINAL:  # once: a retry finds the job terminal and returns above
            JOB_DURATION.labels(inp.status).observe((job.updated_at - job.created_at).total_seconds())
            await running_slots.job_ended(self.engine, self.settings, inp.tenant_id)

    @activity.defn
    async def record_failure(self, inp: FailureInput) -> None:
        async with tenant_session(self.engine, inp.tenant_id) as session:
            job = await job_row(session, inp.job_id)
            first = job.status != JobStatus.failed
            job.status, job.error, job.updated_at = JobStatus.failed, f"{inp.error_code}: {inp.message}", utcnow()
            session.add(job)
            if first:
                await events.status_changed(session, inp.tenant_id, inp.job_id, JobStatus.failed, job.error)
            failure = dict(
                error_code=inp.error_code,
                message=inp.message[:4000],
                failed_step=inp.failed_step,
                temporal_link=self.settings.workflow_link(inp.job_id),
                created_at=utcnow(),
            )
            # A redriven job that fails again: its one dead letter now tells the latest failure.
            await session.execute(
                insert(JobFailure)
                .values(id=uuid.uuid4(), tenant_id=uuid.UUID(inp.tenant_id), job_id=job.id, **failure)
                .on_conflict_do_update(index_elements=["job_id"], set_={**failure, "redriven_at": None})
            )
        if first:
            JOB_DURATION.labels(JobStatus.failed).observe((job.updated_at - job.created_at).total_seconds())
            await running_slots.job_ended(self.engine, self.settings, inp.tenant_id)
        activity.logger.info("job %s failed: %s", inp.job_id, inp.error_code)

    @activity.defn
    async def mark_cancelled(self, inp: CancelledInput) -> None:
        """The workflow's last word on a cancelled job: the job says cancelled (unless it ended
        first), and so does each step and delivery still open. Run after the cancellation, so
        nothing cancels it; a retry changes nothing more."""
        async with tenant_session(self.engine, inp.tenant_id) as session:
            job = await job_row(session, inp.job_id)
            first = job.status not in TERMINAL
            if first:
                job.status, job.updated_at = JobStatus.cancelled, utcnow()
                session.add(job)
                await events.status_changed(session, inp.tenant_id, inp.job_id, JobStatus.cancelled, None)
            await session.execute(
                update(JobStep)
                .where(col(JobStep.job_id) == job.id, col(JobStep.status).in_(OPEN_STEP))
                .values(status=JobStatus.cancelled, error=CANCELLED_STEP, finished_at=utcnow())
            )
            await session.execute(
                update(Delivery)
                .where(col(Delivery.job_id) == job.id, col(Delivery.status) == "pending")
                .values(status=JobStatus.cancelled, error="cancelled before it was delivered")
            )
        if first:
            JOB_DURATION.labels(JobStatus.cancelled).observe((job.updated_at - job.created_at).total_seconds())
            await running_slots.job_ended(self.engine, self.settings, inp.tenant_id)
        activity.logger.info("job %s cancelled", inp.job_id)
