"""Child executions and checkpoints of state machines, in PostgreSQL.

- create_child_job: the jobs row of a child execution (a submission and a job, as the API
  makes them, with the parent's job id), under the parent's tenant: a key of another tenant's
  is not found, so it is refused as Step Functions refuses a state machine that does not exist.
- describe_child_job: a finished child's status, input and output, for a `.sync` Task's result.
- save_machine_checkpoint / load_machine_checkpoint: a failed run's Task results, for a redrive
  that resumes at the state that failed."""

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio import activity

from activities.common import fail, load_job
from activities.jobs import JobRef
from activities.machine_jobs import iso_ms
from lodestone.asl import child_execution as child
from lodestone.db import tenant_session
from lodestone.job_priority import DEFAULT as DEFAULT_PRIORITY
from schema.checkpoints import JobCheckpoint
from schema.definition_kinds import STATE_MACHINE, kind_of
from schema.definitions import InputInvalid, validate_input
from schema.statuses import JobStatus
from schema.tables import Job, Submission, WorkflowDefinition, utcnow


@dataclass
class ChildJobInput:
    tenant_id: str
    parent_job_id: str
    child_job_id: str  # chosen by the parent's workflow, so a retried activity makes one row
    key: str
    input: Any
    name: str | None = None


@dataclass
class ChildJob:
    job_id: str
    workflow_key: str
    start_ms: int  # the job's created_at, in epoch milliseconds (StartExecution's StartDate)


@dataclass
class SaveCheckpointInput:
    tenant_id: str
    job_id: str
    run_id: str
    data: dict[str, Any]


def _ms(at: Any) -> int:
    return int(at.timestamp() * 1000)


class MachineChildActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @activity.defn(name="create_child_job")
    async def create_child_job(self, inp: ChildJobInput) -> ChildJob:
        async with tenant_session(self.engine, inp.tenant_id) as session:
            existing = await session.get(Job, uuid.UUID(inp.child_job_id))
            if existing is not None:  # this activity's earlier attempt made it
                return ChildJob(str(existing.id), existing.workflow_key, _ms(existing.created_at))
            query = select(WorkflowDefinition).where(
                WorkflowDefinition.key == inp.key, col(WorkflowDefinition.superseded_at).is_(None)
            )
            definition = (await session.exec(query)).first()
            if definition is None or kind_of(definition.definition) != STATE_MACHINE:
                raise fail(child.DOES_NOT_EXIST, f"State Machine Does Not Exist: '{inp.key}'")
            try:
                validate_input(definition.definition, inp.input)
            except InputInvalid as e:
                raise fail(child.INVALID_INPUT, f"the input does not meet {inp.key}'s input_schema: {e.message}") from e
            tenant = uuid.UUID(inp.tenant_id)
            # Its row shows the parent's priority (a child runs in its parent's slot, so never waits by it).
            parent = await session.get(Job, uuid.UUID(inp.parent_job_id))
            submission = Submission(tenant_id=tenant, workflow_definition_id=definition.id, input=inp.input)
            now = utcnow()
            job = Job(
                id=uuid.UUID(inp.child_job_id),
                tenant_id=tenant,
                submission_id=submission.id,
                workflow_definition_id=definition.id,
                workflow_key=definition.key,
                parent_job_id=uuid.UUID(inp.parent_job_id),
                priority=parent.priority if parent else DEFAULT_PRIORITY,
                workflow_started_at=now,  # the parent's workflow starts it, not the outbox
                created_at=now,
                updated_at=now,
            )
            session.add(submission)
            await session.flush()
            session.add(job)
        return ChildJob(inp.child_job_id, definition.key, _ms(now))

    @activity.defn(name="describe_child_job")
    async def describe_child_job(self, ref: JobRef) -> dict[str, Any]:
        async with tenant_session(self.engine, ref.tenant_id) as session:
            loaded = await load_job(session, ref.job_id)
        job = loaded.job
        succeeded = job.status == JobStatus.succeeded
        error, _, cause = (job.error or "").partition(": ")
        return {
            "execution_arn": child.execution_arn(ref.tenant_id, job.workflow_key, ref.job_id),
            "state_machine_arn": child.state_machine_arn(ref.tenant_id, job.workflow_key),
            "name": ref.job_id,
            "status": "SUCCEEDED" if succeeded else "FAILED",
            "start_ms": _ms(job.created_at),
            "stop_ms": _ms(job.updated_at),
            "start_iso": iso_ms(job.created_at),
            "input": loaded.input,
            "output": job.output if succeeded else None,
            "error": None if succeeded else error or "States.TaskFailed",
            "cause": None if succeeded else cause,
        }

    @activity.defn(name="save_machine_checkpoint")
    async def save_machine_checkpoint(self, inp: SaveCheckpointInput) -> None:
        row = {"tenant_id": uuid.UUID(inp.tenant_id), "run_id": inp.run_id, "data": inp.data, "created_at": utcnow()}
        async with tenant_session(self.engine, inp.tenant_id) as session:
            await session.execute(
                insert(JobCheckpoint)
                .values(job_id=uuid.UUID(inp.job_id), **row)
                .on_conflict_do_update(index_elements=["job_id"], set_=row)
            )

    @activity.defn(name="load_machine_checkpoint")
    async def load_machine_checkpoint(self, ref: JobRef) -> dict[str, Any] | None:
        async with tenant_session(self.engine, ref.tenant_id) as session:
            found = await session.get(JobCheckpoint, uuid.UUID(ref.job_id))
        return None if found is None else found.data
