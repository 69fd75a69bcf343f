"""Schedules: job schedules (any of the tenant's workflow definitions, by cron or interval;
services/job_schedules.py) and summary schedules (one per contact, every interval_days;
services/schedules.py). The tenant boundary lives in services/schedule_common.py."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from fastapi import APIRouter, Response
from pydantic import AwareDatetime, BaseModel, Field, model_validator
from temporalio.client import ScheduleOverlapPolicy
from temporalio.service import RPCError, RPCStatusCode

from api.bodies import JsonObject
from api.deps import Admin, Editor, StateDep, Viewer
from api.problems import AUTHENTICATED, Problem, not_found, responses, temporal_unavailable
from services import job_schedules as jobs
from services import schedule_common as common
from services import schedules as sched

router = APIRouter(
    prefix="/v1/schedules",
    tags=["schedules"],
    responses={**AUTHENTICATED, **responses(503, descriptions={503: "Temporal or the token issuer did not answer"})},
)
BY_ID, BY_ID_WITH_BODY = responses(404, 422), responses(400, 404, 422)
Overlap = Literal["skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other", "allow_all"]


class ScheduleCreate(BaseModel):
    """A job schedule (`workflow_key`, `input`, `cron` or `interval_seconds`, ...) or a
    summary schedule (`contact_id`, `interval_days`)."""

    workflow_key: str | None = Field(default=None, min_length=1, max_length=63)
    input: JsonObject = Field(default_factory=dict)
    cron: list[str] | str | None = Field(default=None, description="one cron expression or a list of them")
    interval_seconds: int | None = Field(default=None, ge=1, le=366 * 86400)
    offset_seconds: int = Field(default=0, ge=0, le=366 * 86400)
    time_zone: str = Field(default="UTC", max_length=64, description="an IANA time zone name")
    overlap: Overlap = "skip"
    paused: bool = False
    note: str | None = Field(default=None, max_length=500)
    contact_id: uuid.UUID | None = None
    interval_days: int | None = Field(default=None, ge=1, le=sched.MAX_INTERVAL_DAYS)

    @model_validator(mode="after")
    def _one_kind(self) -> "ScheduleCreate":
        if (self.workflow_key is None) == (self.contact_id is None):
            raise ValueError("give workflow_key (a job schedule) or contact_id (a summary schedule)")
        return self

    def crons(self) -> list[str]:
        return [self.cron] if isinstance(self.cron, str) else list(self.cron or [])


class ScheduleNote(BaseModel):
    note: str | None = Field(default=None, max_length=500)


class BackfillRequest(BaseModel):
    start: AwareDatetime
    end: AwareDatetime
    overlap: Overlap = "allow_all"


# The descriptions the services return are the response bodies: one shape, one place.
ScheduleOut = jobs.JobSchedule | sched.SummarySchedule


class ScheduleList(BaseModel):
    items: list[ScheduleOut]


class Triggered(BaseModel):
    schedule_id: str
    overlap: str = Field(description="ALLOW_ALL for a job schedule; SKIP for a summary schedule")
    running: list[str] = Field(description="runs in flight before the trigger; under SKIP, if any, it was skipped")


@contextmanager
def problems() -> Iterator[None]:
    try:
        yield
    except common.ScheduleNotFound as e:
        raise not_found("schedule", e.schedule_id) from e
    except common.ScheduleExists as e:
        raise Problem(409, "schedule_exists", str(e)) from e
    except common.ScheduleInvalid as e:
        extra = {} if e.pointer is None else {"pointer": e.pointer}
        raise Problem(422, "invalid_schedule", str(e), **extra) from e
    except RPCError as e:
        if e.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise temporal_unavailable() from e
        raise


async def describe(state: StateDep, tenant: uuid.UUID, schedule_id: str) -> ScheduleOut:
    if common.is_job_schedule(schedule_id):
        return await jobs.describe_job_schedule(state.temporal, tenant, schedule_id)
    return await sched.describe_summary_schedule(state.temporal, tenant, schedule_id)


@router.post("", status_code=201, response_model=ScheduleOut, responses=responses(400, 404, 409, 422))
async def create_schedule(body: ScheduleCreate, state: StateDep, principal: Editor) -> ScheduleOut:
    """A job schedule starts an ordinary job of `workflow_key` (its current version) with
    `input` at each fire time; a summary schedule sends a contact's summary."""
    tenant = principal.tenant_id
    if body.workflow_key is None:
        assert body.contact_id is not None  # _one_kind
        await sched.summary_contact(state.engine, tenant_id=tenant, contact_id=body.contact_id)
        with problems():
            return await sched.create_summary_schedule(
                state.temporal, state.settings, tenant, body.contact_id, body.interval_days
            )
    req = jobs.JobScheduleRequest(
        workflow_key=body.workflow_key,
        input=body.input,
        cron=body.crons(),
        interval_seconds=body.interval_seconds,
        offset_seconds=body.offset_seconds,
        time_zone=body.time_zone,
        overlap=body.overlap,
        paused=body.paused,
        note=body.note,
    )
    with problems():
        await jobs.check_request(state.engine, tenant, req)
        return await jobs.create_job_schedule(state.temporal, state.settings, tenant, req)


@router.get("", response_model=ScheduleList)
async def list_schedules(state: StateDep, principal: Viewer) -> ScheduleList:
    with problems():
        found: list[ScheduleOut] = [*await jobs.list_job_schedules(state.temporal, principal.tenant_id)]
        found += await sched.list_summary_schedules(state.temporal, principal.tenant_id)
    return ScheduleList(items=found)


@router.get("/{schedule_id}", response_model=ScheduleOut, responses=BY_ID)
async def get_schedule(schedule_id: str, state: StateDep, principal: Viewer) -> ScheduleOut:
    with problems():
        return await describe(state, principal.tenant_id, schedule_id)


@router.post("/{schedule_id}/pause", response_model=ScheduleOut, responses=BY_ID_WITH_BODY)
async def pause_schedule(
    schedule_id: str, state: StateDep, principal: Editor, body: ScheduleNote | None = None
) -> ScheduleOut:
    with problems():
        await common.pause_schedule(state.temporal, principal.tenant_id, schedule_id, body and body.note)
        return await describe(state, principal.tenant_id, schedule_id)


@router.post("/{schedule_id}/resume", response_model=ScheduleOut, responses=BY_ID_WITH_BODY)
@router.post("/{schedule_id}/unpause", response_model=ScheduleOut, responses=BY_ID_WITH_BODY)
async def resume_schedule(
    schedule_id: str, state: StateDep, principal: Editor, body: ScheduleNote | None = None
) -> ScheduleOut:
    with problems():
        await common.unpause_schedule(state.temporal, principal.tenant_id, schedule_id, body and body.note)
        return await describe(state, principal.tenant_id, schedule_id)


@router.post("/{schedule_id}/trigger", status_code=202, response_model=Triggered, responses=BY_ID)
async def trigger_schedule(schedule_id: str, state: StateDep, principal: Editor) -> Triggered:
    with problems():
        overlap, running = await common.trigger_schedule(state.temporal, principal.tenant_id, schedule_id)
    return Triggered(schedule_id=schedule_id, overlap=overlap, running=running)


@router.post("/{schedule_id}/backfill", status_code=202, responses=BY_ID_WITH_BODY)
async def backfill_schedule(
    schedule_id: str, body: BackfillRequest, state: StateDep, principal: Admin
) -> dict[str, str]:
    overlap = ScheduleOverlapPolicy[body.overlap.upper()]
    with problems():
        await common.backfill_schedule(state.temporal, principal.tenant_id, schedule_id, body.start, body.end, overlap)
    return {"schedule_id": schedule_id, "start": body.start.isoformat(), "end": body.end.isoformat()}


@router.delete("/{schedule_id}", status_code=204, responses=BY_ID)
async def delete_schedule(schedule_id: str, state: StateDep, principal: Admin) -> Response:
    with problems():
        await common.delete_schedule(state.temporal, principal.tenant_id, schedule_id)
    return Response(status_code=204)
