"""A redrive's plan: what the new run will skip (done, its stored result reused) and what
it will run, and where it starts."""

from dataclasses import dataclass

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from schema.definition_kinds import STATE_MACHINE, kind_of
from schema.tables import (
    Artifact,
    Delivery,
    Job,
    JobCheckpoint,
    JobFailure,
    JobStateEvent,
    JobStep,
    UsageRecord,
    WorkflowDefinition,
)


@dataclass
class Action:
    verb: str  # "skip" (done, its stored result is reused) or "run"
    kind: str  # "step", "render" or "deliver"; "state_machine" for a state machine run again whole
    name: str
    state: str


async def actions(
    session: AsyncSession, job: Job, wf: WorkflowDefinition, checkpoint: JobCheckpoint | None, stale: list[str]
) -> list[Action]:
    """What the new run will skip and what it will do, by the same tests the activities make;
    `stale`: completed steps that will run again, `wf` being a version other than the last run's."""
    if kind_of(wf.definition) == STATE_MACHINE:
        recorded = (await session.exec(select(JobStateEvent.id).where(JobStateEvent.job_id == job.id))).all()
        cleared = f"{len(recorded)} path event(s) cleared"
        if checkpoint is not None:
            failure = (await session.exec(select(JobFailure).where(JobFailure.job_id == job.id))).first()
            at = failure.failed_step if failure and failure.failed_step else "the failed state"
            done = [Action("skip", "task", path, "succeeded") for path in checkpoint.data.get("results", {})]
            return [*done, Action("run", "state_machine", f"from {at}", cleared)]
        start = wf.definition["state_machine"].get("StartAt", "?")
        return [Action("run", "state_machine", f"from StartAt {start}", cleared)]
    steps = {s.step_id: s for s in (await session.exec(select(JobStep).where(JobStep.job_id == job.id))).all()}
    used = set((await session.exec(select(UsageRecord.step_id).where(UsageRecord.job_id == job.id))).all())
    stored = set((await session.exec(select(Artifact.kind).where(Artifact.job_id == job.id))).all())
    sent = {d.target_index: d for d in (await session.exec(select(Delivery).where(Delivery.job_id == job.id))).all()}
    plan = []
    for step in wf.definition["steps"]:
        row = steps.get(step["id"])
        reusable = row is not None and row.status == "completed" and step["id"] in used and step["id"] not in stale
        plan.append(Action("skip" if reusable else "run", "step", step["id"], row.status if row else "not started"))
    for kind in wf.definition.get("outputs", ["html"]):
        reused = kind in stored and wf.id == job.workflow_definition_id
        plan.append(Action("skip", "render", kind, "stored") if reused else Action("run", "render", kind, "-"))
    for i, target in enumerate(wf.definition.get("delivery", [])):
        d = sent.get(i)
        name = f"#{i} {target['type']} {target.get('url') or target.get('to', '')}"
        state = f"{d.status} after {d.attempts} attempt(s)" if d else "not attempted"
        plan.append(Action("skip" if d and d.status == "delivered" else "run", "deliver", name, state))
    return plan


def start_of(plan: list[Action]) -> str:
    """Where the new run starts: its first action that runs (a state machine's names its state)."""
    first = next((a for a in plan if a.verb == "run"), None)
    if first is None:
        return "nothing left to run"
    return first.name if first.kind == "state_machine" else f"{first.kind} {first.name}"
