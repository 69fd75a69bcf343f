"""A state-machine job's bookkeeping in PostgreSQL: its plan (the machine, its bindings, the
input and the context object), its path (the interpreter's events, in order), and its end.

The context object "$$" a machine sees:
- Execution.Id: `lodestone:<tenant id>:<workflow key>:<job id>`; Execution.Name: the job id;
  Execution.StartTime: when the job was created (ISO 8601, milliseconds, `Z`);
  Execution.Input: the submission's input.
- StateMachine.Id: `lodestone:<tenant id>:<workflow key>:<definition version>`;
  StateMachine.Name: the workflow key.
The interpreter adds State and Map.Item."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from activities import errors, events, running_slots
from activities.common import fail, load_job
from activities.jobs import JobRef
from activities.machine_values import clip, clip_text, storable
from lodestone.db import tenant_session
from lodestone.metrics import JOB_DURATION
from lodestone.settings import Settings
from schema.definition_kinds import STATE_MACHINE, kind_of
from schema.statuses import TERMINAL, JobStatus
from schema.tables import JobFailure, JobStateEvent, WorkflowDefinition, utcnow

# The columns of an event, besides seq and at, as Event names them.
EVENT_FIELDS = ("kind", "state", "path", "type", "error", "attempt", "delay_seconds", "next")


# A path event's kind, as a `state` job event's status.
STATE_STATUS = {
    "entered": "entered",
    "retry": "retrying",
    "exited": "succeeded",
    "failed": "failed",
    "caught": "failed",
}


def state_event(row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return events.STATE, {
        "state": row["state"],
        "path": row["path"],
        "status": STATE_STATUS[row["kind"]],
        "attempt": row["attempt"] or 1,
        "error": row["error"],
    }


@dataclass
class MachinePlan:
    state_machine: dict[str, Any]
    bindings: list[dict[str, Any]]
    input: Any
    context: dict[str, Any]  # {"Execution": {...}, "StateMachine": {...}} for "$$"
    path_value_max_bytes: int  # each event's input/output is truncated past this


@dataclass
class MachineEventsInput:
    tenant_id: str
    job_id: str
    first_seq: int  # seq of events[0]; rows are keyed (job_id, seq), so a retry writes nothing twice
    events: list[dict[str, Any]]  # dataclasses.asdict(Event) + "at" (ISO 8601)


@dataclass
class MachineFinishInput:
    tenant_id: str
    job_id: str
    status: str  # "succeeded" | "failed"
    output: Any = None
    error: str | None = None
    cause: str | None = None


def iso_ms(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class MachineJobActivities:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    @activity.defn(name="load_machine")
    async def load_machine(self, ref: JobRef) -> MachinePlan:
        async with tenant_session(self.engine, ref.tenant_id) as session:
            loaded = await load_job(session, ref.job_id)
            wf = await session.get(WorkflowDefinition, loaded.job.workflow_definition_id)
        d, job = loaded.definition, loaded.job
        assert wf is not None  # a foreign key (load_job read it already)
        if kind_of(d) != STATE_MACHINE:
            raise fail(errors.JOB_NOT_FOUND, f"job {ref.job_id} is not a state-machine job of this tenant")
        prefix = f"lodestone:{ref.tenant_id}:{job.workflow_key}"
        return MachinePlan(
            state_machine=d["state_machine"],
            bindings=d.get("resources", []),
            input=loaded.input,
            context={
                "Execution": {
                    "Id": f"{prefix}:{job.id}",
                    "Name": str(job.id),
                    "StartTime": iso_ms(job.created_at),
                    "Input": loaded.input,
                },
                "StateMachine": {"Id": f"{prefix}:{wf.version}", "Name": job.workflow_key},
            },
            path_value_max_bytes=self.settings.machine_path_value_max_bytes,
        )

    @activity.defn(name="record_machine_events")
    async def record_machine_events(self, inp: MachineEventsInput) -> None:
        if not inp.events:
            return
        limit = self.settings.machine_path_value_max_bytes
        rows = [
            {
                **{f: e.get(f) for f in EVENT_FIELDS},
                "id": uuid.uuid4(),
                "tenant_id": uuid.UUID(inp.tenant_id),
                "job_id": uuid.UUID(inp.job_id),
                "seq": inp.first_seq + i,
                "at": datetime.fromisoformat(e["at"]),
                "input": clip(e.get("input"), limit),
                "output": clip(e.get("output"), limit),
                "error": clip_text(e.get("error"), limit),
                "cause": clip_text(e.get("cause"), limit),
            }
            for i, e in enumerate(inp.events)
        ]
        async with tenant_session(self.engine, inp.tenant_id) as session:
            added = await session.execute(
                insert(JobStateEvent)
                .values(rows)
                .on_conflict_do_nothing(index_elements=["job_id", "seq"])
                .returning(col(JobStateEvent.seq))
            )
            # Only the rows this call added: a retried record emits nothing twice.
            new = {seq for (seq,) in added}
            progress = [state_event(r) for r in rows if r["seq"] in new and r["kind"] in STATE_STATUS]
            if progress:
                await events.append_many(session, inp.tenant_id, inp.job_id, progress)

    @activity.defn(name="finish_machine")
    async def finish_machine(self, inp: MachineFinishInput) -> None:
        """The job's end: succeeded with its output, or failed with a dead letter (error name
        and cause) that `lodestone ops redrive` starts over from. Once terminal, a retry
        changes nothing."""
        async with tenant_session(self.engine, inp.tenant_id) as session:
            job = (await load_job(session, inp.job_id)).job
            if job.status in TERMINAL:
                return
            job.updated_at = utcnow()
            succeeded = inp.status.lower() == JobStatus.succeeded
            if succeeded:
                job.status, job.output, job.error = JobStatus.succeeded, storable(inp.output), None
            else:
                error = clip_text(inp.error, 200) or "States.Runtime"
                cause = clip_text(inp.cause, 4000) or ""
                job.status, job.error = JobStatus.failed, f"{error}: {cause}" if cause else error
                failure = dict(
                    error_code=error,
                    message=cause,
                    failed_step=await self._failed_at(session, job.id),
                    temporal_link=self.settings.workflow_link(inp.job_id),
                    created_at=utcnow(),
                )
                await session.execute(
                    insert(JobFailure)
                    .values(id=uuid.uuid4(), tenant_id=job.tenant_id, job_id=job.id, **failure)
                    .on_conflict_do_update(index_elements=["job_id"], set_={**failure, "redriven_at": None})
                )
            session.add(job)
            await events.status_changed(session, inp.tenant_id, inp.job_id, job.status, job.error)
        JOB_DURATION.labels(job.status).observe((job.updated_at - job.created_at).total_seconds())
        await running_slots.job_ended(self.engine, self.settings, inp.tenant_id)
        activity.logger.info("job %s %s", inp.job_id, job.status if succeeded else f"failed: {inp.error}")

    @staticmethod
    async def _failed_at(session: AsyncSession, job_id: uuid.UUID) -> str | None:
        """The path of the state the machine failed in: its last `failed` event's."""
        query = (
            select(JobStateEvent.path)
            .where(JobStateEvent.job_id == job_id, JobStateEvent.kind == "failed")
            .order_by(col(JobStateEvent.seq).desc())
            .limit(1)
        )
        return (await session.exec(query)).first()
