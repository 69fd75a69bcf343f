"""Redrive: a new run of a failed job's workflow, under the same workflow id (the job id) and
with the same input, once its last run has closed as failed, terminated or timed out. For a
pipeline (SubmissionWorkflow) nothing already done is done again: run_step returns a
completed step's stored result, render returns a stored artifact, and delivery never
re-sends a delivered target. So the new run picks up, in effect, at the step that failed.
A state machine (StateMachineWorkflow) resumes at the state that failed, as Step Functions'
RedriveExecution does: its failed run saved a checkpoint (each Task's result by path), and the
new run serves the Tasks that succeeded from it, so no succeeded state or Map item runs again
(workflows/machine_children.py). With ``from_start`` (or no checkpoint: a run terminated or
timed out, or one from before checkpoints) it runs again from StartAt. Either way its recorded
path and output are cleared, the new run records its own, and the job's redrive_count grows.
``version`` chooses the definition version the new run runs (services/redrive_version.py).
The API's route and `lodestone ops redrive` both call redrive() here."""

import asyncio
import uuid
from dataclasses import dataclass, field, replace

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.common import TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities import events
from lodestone.db import tenant_session
from lodestone.job_priority import job_priority
from lodestone.settings import Settings
from schema.statuses import JobStatus
from schema.tables import (
    Delivery,
    Job,
    JobCheckpoint,
    JobFailure,
    JobStateEvent,
    utcnow,
)
from services.errors import OpsError
from services.operator_db import delivery_owner, job_tenant
from services.outbox import workflow_type
from services.redrive_plan import Action, actions, start_of
from services.redrive_version import Chosen, RedriveConflict, RedriveNotFound, Version, choose, reset_for
from workflows.types import SubmissionInput, job_search_attributes

REDRIVABLE = {WorkflowExecutionStatus.FAILED, WorkflowExecutionStatus.TERMINATED, WorkflowExecutionStatus.TIMED_OUT}
CLOSING_WAIT_SECONDS = 10.0  # how long a redrive waits for the run of a job that says failed to close


@dataclass
class Redrive:
    job_id: str
    tenant_id: str
    workflow_key: str
    last_run: str
    failure: str | None
    version: int  # the definition version the new run runs
    previous_version: int  # the one the job's last run ran
    start: str  # where the new run starts: a step, a render or delivery, or a state
    actions: list[Action] = field(default_factory=list)
    new_run_id: str | None = None
    redrive_count: int = 0  # the job's, after this redrive


def search_attributes(job: Job) -> TypedSearchAttributes:
    return job_search_attributes(job.tenant_id, job.id, job.workflow_key)


async def last_run(client: Client, job: Job, workflow: str) -> WorkflowExecutionDescription | None:
    """The job's latest run (of type `workflow`), if it may be redriven; None when Temporal no
    longer has any run (its retention expired) and the job row says failed."""
    try:
        run = await client.get_workflow_handle(str(job.id)).describe()
    except RPCError as e:
        if e.status != RPCStatusCode.NOT_FOUND:
            raise
        if job.status != JobStatus.failed:
            raise RedriveConflict(
                "job_not_failed", f"job {job.id} is {job.status} and has no run in Temporal; nothing to redrive"
            ) from e
        return None
    if run.workflow_type != workflow:
        raise RedriveConflict("redrive_refused", f"workflow {job.id} is a {run.workflow_type}, not a {workflow}")
    if run.status == WorkflowExecutionStatus.RUNNING and job.status == JobStatus.failed:
        run = await _closing(client, job, run)
    status = run.status.name.lower() if run.status else "unknown"
    if run.status == WorkflowExecutionStatus.RUNNING:
        raise RedriveConflict(
            "redrive_refused", f"job {job.id} is still running (run {run.run_id}); only a closed run can be redriven"
        )
    if run.status == WorkflowExecutionStatus.COMPLETED:
        raise RedriveConflict(
            "job_not_failed", f"job {job.id} already completed (job status {job.status}); nothing to redrive"
        )
    if run.status not in REDRIVABLE:
        raise RedriveConflict(
            "redrive_refused",
            f"job {job.id}'s last run was {status}; only failed, terminated or timed-out runs are redriven",
        )
    return run


async def _closing(client: Client, job: Job, run: WorkflowExecutionDescription) -> WorkflowExecutionDescription:
    """A run whose job already says failed is closing: it writes the job's end, wakes the
    tenant's waiting jobs, then fails. Wait up to CLOSING_WAIT_SECONDS for it to close, so a
    redrive asked as soon as the job says failed is not refused as still running."""
    deadline = asyncio.get_running_loop().time() + CLOSING_WAIT_SECONDS
    while run.status == WorkflowExecutionStatus.RUNNING and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
        run = await client.get_workflow_handle(str(job.id)).describe()
    return run


async def original_input(client: Client, run: WorkflowExecutionDescription | None, job: Job) -> SubmissionInput:
    """The input the last run started with, from its history; rebuilt from the job row as the
    API builds it when that history is gone."""
    rebuilt = SubmissionInput(str(job.tenant_id), str(job.id))
    if run is None:
        return rebuilt
    events = client.get_workflow_handle(str(job.id), run_id=run.run_id).fetch_history_events()
    started = (await anext(aiter(events))).workflow_execution_started_event_attributes
    (recorded,) = await client.data_converter.decode(started.input.payloads, [SubmissionInput])
    if (recorded.tenant_id, recorded.job_id) != (rebuilt.tenant_id, rebuilt.job_id):
        raise OpsError(f"run {run.run_id} started with {recorded}, which is not job {job.id} of its tenant")
    return recorded


async def redrive(
    settings: Settings,
    client: Client,
    owner: AsyncEngine | None,
    app: AsyncEngine,
    job_id: uuid.UUID,
    *,
    dry_run: bool = False,
    delivery_id: uuid.UUID | None = None,
    tenant: uuid.UUID | None = None,
    from_start: bool = False,
    version: Version = Version.original,
) -> Redrive:
    """``owner`` finds the job's tenant when ``tenant`` is not given (the API gives the caller's)."""
    if tenant is None and owner is not None:
        tenant = await job_tenant(owner, job_id)  # redeliver has found it already
    if tenant is None:
        raise RedriveNotFound(job_id)
    # One transaction, holding the job row, until the new run has started: a second operator
    # redriving the same job waits here, then finds the run running and is refused; a start
    # that fails rolls every reset back. (The new run's first activity waits for this commit;
    # were the commit itself lost after the start, the job would stay failed while it runs.)
    async with tenant_session(app, tenant) as session:
        job = (await session.exec(select(Job).where(col(Job.id) == job_id).with_for_update())).first()
        if job is None:
            raise RedriveNotFound(job_id)
        reopen = await _reopen(session, delivery_id) if delivery_id else None
        chosen = await choose(session, job, version)
        workflow = workflow_type(chosen.previous.definition)
        run = await last_run(client, job, workflow)
        inp = await original_input(client, run, job)
        failure = (await session.exec(select(JobFailure).where(JobFailure.job_id == job.id))).first()
        fresh = from_start or chosen.changed  # another version's state machine starts over
        checkpoint = None if fresh else await session.get(JobCheckpoint, job.id)
        plan = _plan(job, str(tenant), run, failure, chosen)
        plan.actions = await actions(session, job, chosen.definition, checkpoint, chosen.stale_steps)
        plan.start = start_of(plan.actions)
        if dry_run:
            return plan
        # set_status leaves a failed job failed; the new run moves it on from pending.
        job.status, job.error, job.output, job.updated_at = JobStatus.pending, None, None, utcnow()
        job.slot_at = None  # the new run claims a running slot of its own
        job.redrive_count += 1
        plan.redrive_count = job.redrive_count
        # Its event stream goes on past the failed run's `end`: a stream opened now waits for the new run.
        await events.status_changed(session, str(job.tenant_id), str(job.id), JobStatus.pending, None)
        # A state machine's new run records its path from seq 0 again.
        await session.execute(delete(JobStateEvent).where(col(JobStateEvent.job_id) == job.id))
        if from_start:
            await session.execute(delete(JobCheckpoint).where(col(JobCheckpoint.job_id) == job.id))
        await reset_for(session, job, chosen)
        session.add(job)
        inp = replace(inp, resume=checkpoint is not None)
        if failure is not None:
            failure.redriven_at = utcnow()
            session.add(failure)
        if reopen is not None:
            reopen.status = "pending"  # attempts and webhook_id stay: the receiver sees the same id
            session.add(reopen)
        await session.flush()
        try:
            handle = await client.start_workflow(
                workflow,
                inp,
                id=str(job.id),
                task_queue=settings.temporal_task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                search_attributes=search_attributes(job),
                priority=job_priority(job.tenant_id),
            )
        except WorkflowAlreadyStartedError as e:
            raise RedriveConflict(
                "redrive_refused", f"another run of job {job.id} started meanwhile; nothing changed"
            ) from e
        plan.new_run_id = handle.result_run_id
    return plan


def _plan(
    job: Job, tenant: str, run: WorkflowExecutionDescription | None, failure: JobFailure | None, chosen: Chosen
) -> Redrive:
    last = f"{run.status.name if run.status else '?'} (run {run.run_id})" if run else "none left in Temporal"
    return Redrive(
        str(job.id),
        tenant,
        job.workflow_key,
        last,
        f"{failure.failed_step}: {failure.error_code}: {failure.message}" if failure else None,
        version=chosen.definition.version,
        previous_version=chosen.previous.version,
        start="",
        redrive_count=job.redrive_count,
    )


async def _reopen(session: AsyncSession, delivery_id: uuid.UUID) -> Delivery:
    delivery = (await session.exec(select(Delivery).where(col(Delivery.id) == delivery_id).with_for_update())).one()
    if delivery.status == "delivered":
        when = delivery.delivered_at.isoformat() if delivery.delivered_at else "earlier"
        raise OpsError(f"delivery {delivery_id} was delivered {when}; nothing to replay")
    return delivery


async def redeliver(
    settings: Settings,
    client: Client,
    owner: AsyncEngine,
    app: AsyncEngine,
    delivery_id: uuid.UUID,
    *,
    dry_run: bool = False,
) -> Redrive:
    """Reopen one failed delivery and redrive its job: the targets already delivered are skipped."""
    found = await delivery_owner(owner, delivery_id)
    if found is None:
        raise OpsError(f"delivery {delivery_id} not found")
    return await redrive(
        settings, client, owner, app, found[1], dry_run=dry_run, delivery_id=delivery_id, tenant=found[0]
    )
