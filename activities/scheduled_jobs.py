"""create_scheduled_job: the job row of one run of a job schedule (services/job_schedules.py),
a submission and a job as the API makes them, for the key's current definition. Its id comes
from the scheduled run (one job per scheduled time), so a retried attempt finds its row."""

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio import activity

from activities import errors
from activities.common import fail
from lodestone.db import tenant_session
from schema.definition_kinds import kind_of
from schema.definitions import InputInvalid, validate_input
from schema.tables import Job, Submission, WorkflowDefinition, utcnow


@dataclass
class ScheduledJobRequest:
    tenant_id: str
    job_id: str
    workflow_key: str
    input: Any


@dataclass
class ScheduledJob:
    job_id: str
    workflow_key: str
    kind: str  # the definition's: pipeline or state_machine


def _made(job: Job, definition: dict[str, Any]) -> ScheduledJob:
    return ScheduledJob(str(job.id), job.workflow_key, kind_of(definition))


class ScheduledJobActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @activity.defn(name="create_scheduled_job")
    async def create_scheduled_job(self, inp: ScheduledJobRequest) -> ScheduledJob:
        async with tenant_session(self.engine, inp.tenant_id) as session:
            existing = await session.get(Job, uuid.UUID(inp.job_id))
            if existing is not None:  # this activity's earlier attempt made it
                made = await session.get(WorkflowDefinition, existing.workflow_definition_id)
                assert made is not None  # a foreign key
                return _made(existing, made.definition)
            query = select(WorkflowDefinition).where(
                WorkflowDefinition.key == inp.workflow_key, col(WorkflowDefinition.superseded_at).is_(None)
            )
            definition = (await session.exec(query)).first()
            if definition is None:
                raise fail(errors.SCHEDULED_WORKFLOW_NOT_FOUND, f"workflow {inp.workflow_key!r} has no definition")
            try:
                validate_input(definition.definition, inp.input)
            except InputInvalid as e:
                message = f"the input does not meet {inp.workflow_key}'s input_schema at {e.path}: {e.message}"
                raise fail(errors.SCHEDULED_INPUT_INVALID, message) from e
            tenant, now = uuid.UUID(inp.tenant_id), utcnow()
            submission = Submission(tenant_id=tenant, workflow_definition_id=definition.id, input=inp.input)
            job = Job(
                id=uuid.UUID(inp.job_id),
                tenant_id=tenant,
                submission_id=submission.id,
                workflow_definition_id=definition.id,
                workflow_key=definition.key,
                created_at=now,
                updated_at=now,
            )
            session.add(submission)
            await session.flush()
            session.add(job)
        return _made(job, definition.definition)
