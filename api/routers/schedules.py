"""Summary schedules: one Temporal Schedule per contact, fired every interval_days.
The tenant boundary and the schedule's shape live in services.schedules."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import APIRouter, Response
from pydantic import AwareDatetime, BaseModel, Field
from temporalio.service import RPCError, RPCStatusCode

from api.deps import Admin, Editor, StateDep, Viewer
from api.problems import AUTHENTICATED, Problem, not_found, responses, temporal_unavailable
from services import schedules as sched

router = APIRouter(
    prefix="/v1/schedules",
    tags=["schedules"],
    responses={**AUTHENTICATED, **responses(503, descriptions={503: "Temporal or the token issuer did not answer"})},
)
BY_ID, BY_ID_WITH_BODY = responses(404, 422), responses(400, 404, 422)


class ScheduleCreate(BaseModel):
    contact_id: uuid.UUID
    interval_days: int | None = Field(default=None, ge=1, le=sched.MAX_INTERVAL_DAYS)


class ScheduleNote(BaseModel):
    note: str | None = Field(default=None, max_length=500)


class BackfillRequest(BaseModel):
    start: AwareDatetime
    end: AwareDatetime


# The description services.schedules returns is the response body: one shape, one place.
ScheduleOut = sched.SummarySchedule


class ScheduleList(BaseModel):
    items: list[ScheduleOut]


class Triggered(BaseModel):
    schedule_id: str
    overlap: str = "SKIP"
    running: list[str] = Field(description="runs in flight before the trigger; if any, it was skipped")


@contextmanager
def problems() -> Iterator[None]:
    try:
        yield
    except sched.ScheduleNotFound as e:
        raise not_found("schedule", e.schedule_id) from e
    except sched.ScheduleExists as e:
        raise Problem(409, "schedule_exists", str(e)) from e
    except sched.ScheduleInvalid as e:
        raise Problem(422, "invalid_schedule", str(e)) from e
    except RPCError as e:
        if e.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise temporal_unavailable() from e
        raise


@router.post("", status_code=201, response_model=ScheduleOut, responses=responses(400, 404, 409, 422))
async def create_schedule(body: ScheduleCreate, state: StateDep, principal: Editor) -> ScheduleOut:
    await sched.summary_contact(state.engine, tenant_id=principal.tenant_id, contact_id=body.contact_id)
    with problems():
        return await sched.create_summary_schedule(
            state.temporal, state.settings, principal.tenant_id, body.contact_id, body.interval_days
        )


@router.get("", response_model=ScheduleList)
async def list_schedules(state: StateDep, principal: Viewer) -> ScheduleList:
    with problems():
        return ScheduleList(items=await sched.list_summary_schedules(state.temporal, principal.tenant_id))


@router.get("/{schedule_id}", response_model=ScheduleOut, responses=BY_ID)
async def get_schedule(schedule_id: str, state: StateDep, principal: Viewer) -> ScheduleOut:
    with problems():
        return await sched.describe_summary_schedule(state.temporal, principal.tenant_id, schedule_id)


@router.post("/{schedule_id}/pause", response_model=ScheduleOut, responses=BY_ID_WITH_BODY)
async def pause_schedule(
    schedule_id: str, state: StateDep, principal: Editor, body: ScheduleNote | None = None
) -> ScheduleOut:
    with problems():
        await sched.pause_summary_schedule(state.temporal, principal.tenant_id, schedule_id, body and body.note)
        return await sched.describe_summary_schedule(state.temporal, principal.tenant_id, schedule_id)


@router.post("/{schedule_id}/unpause", response_model=ScheduleOut, responses=BY_ID_WITH_BODY)
async def unpause_schedule(
    schedule_id: str, state: StateDep, principal: Editor, body: ScheduleNote | None = None
) -> ScheduleOut:
    with problems():
        await sched.unpause_summary_schedule(state.temporal, principal.tenant_id, schedule_id, body and body.note)
        return await sched.describe_summary_schedule(state.temporal, principal.tenant_id, schedule_id)


@router.post("/{schedule_id}/trigger", status_code=202, response_model=Triggered, responses=BY_ID)
async def trigger_schedule(schedule_id: str, state: StateDep, principal: Editor) -> Triggered:
    with problems():
        running = await sched.trigger_summary_schedule(state.temporal, principal.tenant_id, schedule_id)
    return Triggered(schedule_id=schedule_id, running=running)


@router.post("/{schedule_id}/backfill", status_code=202, responses=BY_ID_WITH_BODY)
async def backfill_schedule(
    schedule_id: str, body: BackfillRequest, state: StateDep, principal: Admin
) -> dict[str, str]:
    with problems():
        await sched.backfill_summary_schedule(state.temporal, principal.tenant_id, schedule_id, body.start, body.end)
    return {"schedule_id": schedule_id, "start": body.start.isoformat(), "end": body.end.isoformat()}


@router.delete("/{schedule_id}", status_code=204, responses=BY_ID)
async def delete_schedule(schedule_id: str, state: StateDep, principal: Admin) -> Response:
    with problems():
        await sched.delete_summary_schedule(state.temporal, principal.tenant_id, schedule_id)
    return Response(status_code=204)
