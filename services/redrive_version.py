"""Which definition version a redrive runs, and what of the failed run's work that version
may reuse.

``original`` runs the version the job was submitted with (its submission's); ``latest`` its
workflow key's current version. The job records the version its runs use
(jobs.workflow_definition_id), which every activity loads. When the version changes, work
done under the old one is reused only where the new one would do the same: a pipeline keeps
its completed steps up to the first step that differs (a later step may read a changed one),
and renders again; a state machine runs again from StartAt."""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from schema.definition_kinds import kind_of
from schema.definitions import InputInvalid, validate_input
from schema.json_schemas import UNEVALUABLE
from schema.tables import Artifact, Job, JobCheckpoint, JobStep, Submission, UsageRecord, WorkflowDefinition
from services.errors import Conflict, Invalid, NotFound, OpsError


class Version(StrEnum):
    original = "original"
    latest = "latest"


class RedriveNotFound(OpsError, NotFound):
    """No such job for this tenant."""

    def __init__(self, job_id: object) -> None:
        NotFound.__init__(self, "job", job_id)


class RedriveConflict(OpsError, Conflict):
    """The job cannot be redriven as it stands (API: 409 with `code`)."""

    def __init__(self, code: str, detail: str) -> None:
        Conflict.__init__(self, code, detail)


class RedriveInvalid(OpsError, Invalid):
    """The version asked for cannot run the job's input (API: 422 with `code` and `pointer`)."""

    def __init__(self, code: str, detail: str, pointer: str | None = None) -> None:
        Invalid.__init__(self, code, detail, pointer)


@dataclass
class Chosen:
    definition: WorkflowDefinition  # what the new run runs
    previous: WorkflowDefinition  # what the job's last run ran
    stale_steps: list[str]  # a pipeline's completed steps the new version runs again

    @property
    def changed(self) -> bool:
        return self.definition.id != self.previous.id


async def choose(session: AsyncSession, job: Job, version: Version) -> Chosen:
    previous = await session.get(WorkflowDefinition, job.workflow_definition_id)
    submission = await session.get(Submission, job.submission_id)
    assert previous is not None and submission is not None  # foreign keys
    if version == Version.original:
        chosen = await session.get(WorkflowDefinition, submission.workflow_definition_id)
        assert chosen is not None  # a foreign key
    else:
        chosen = (
            await session.exec(
                select(WorkflowDefinition).where(
                    WorkflowDefinition.key == job.workflow_key, col(WorkflowDefinition.superseded_at).is_(None)
                )
            )
        ).first()
        if chosen is None:
            raise NotFound("workflow", job.workflow_key)
    if chosen.id != previous.id:
        _check_compatible(job, previous, chosen, submission.input)
    return Chosen(
        chosen, previous, _stale_steps(previous.definition, chosen.definition) if chosen.id != previous.id else []
    )


def _check_compatible(job: Job, previous: WorkflowDefinition, chosen: WorkflowDefinition, data: Any) -> None:
    was, now = kind_of(previous.definition), kind_of(chosen.definition)
    if was != now:
        raise RedriveConflict(
            "definition_kind_changed",
            f"job {job.id} ran a {was}; version {chosen.version} of {job.workflow_key!r} is a {now}",
        )
    try:
        validate_input(chosen.definition, data)
    except InputInvalid as e:
        raise RedriveInvalid(
            "input_no_longer_valid",
            f"the job's input does not meet version {chosen.version}'s input_schema: {e.message}",
            pointer=e.path,
        ) from e
    except UNEVALUABLE as e:
        raise RedriveInvalid(
            "unusable_schema", f"version {chosen.version}'s input_schema cannot be evaluated", "/input_schema"
        ) from e


def _stale_steps(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """A pipeline's step ids from the first one whose spec differs, in the new version's order."""
    if "steps" not in after:
        return []
    old = {s["id"]: s for s in before.get("steps", [])}
    stale: list[str] = []
    for step in after["steps"]:
        if stale or old.get(step["id"]) != step:
            stale.append(step["id"])
    return stale


async def reset_for(session: AsyncSession, job: Job, chosen: Chosen) -> None:
    """Drop what the new version must not reuse, and record the version on the job."""
    if not chosen.changed:
        return
    job_id = job.id
    if chosen.stale_steps:
        stale = col(JobStep.step_id).in_(chosen.stale_steps)
        await session.execute(delete(JobStep).where(col(JobStep.job_id) == job_id, stale))
        used = col(UsageRecord.step_id).in_(chosen.stale_steps)
        await session.execute(delete(UsageRecord).where(col(UsageRecord.job_id) == job_id, used))
    await session.execute(delete(Artifact).where(col(Artifact.job_id) == job_id))
    await session.execute(delete(JobCheckpoint).where(col(JobCheckpoint.job_id) == job_id))
    job.workflow_definition_id = chosen.definition.id
