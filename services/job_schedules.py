"""Job schedules: a Temporal Schedule that starts an ordinary job of one of the tenant's
workflow definitions (its current version at each run) with a fixed input, by cron
expressions or an interval, in a time zone, under an overlap policy.

The id is `job:{tenant_id}:{hex}`; services.schedules holds the tenant boundary (the prefix)
and the calls every schedule shares (pause, resume, backfill, delete). Each run is a
ScheduledJobWorkflow (workflows/scheduled_job.py): it makes the job row and runs the job as
its child, one job per scheduled time."""

import uuid
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionExecution,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleListDescription,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from lodestone.db import tenant_session
from lodestone.job_priority import job_priority
from lodestone.settings import Settings
from services.errors import Invalid, NotFound
from services.schedule_common import (
    SHOWN_NEXT_TIMES,
    ScheduleExists,
    ScheduleInvalid,
    job_prefix,
    not_found_as_typed,
    owned,
    tenant_key,
    workflow_ids,
)
from services.submissions import runnable_definition
from workflows.names import SCHEDULED_JOB
from workflows.scheduled_job import scheduled_job_id
from workflows.types import TENANT_ID, ScheduledJobInput

OVERLAP = {
    "skip": ScheduleOverlapPolicy.SKIP,
    "buffer_one": ScheduleOverlapPolicy.BUFFER_ONE,
    "buffer_all": ScheduleOverlapPolicy.BUFFER_ALL,
    "cancel_other": ScheduleOverlapPolicy.CANCEL_OTHER,
    "terminate_other": ScheduleOverlapPolicy.TERMINATE_OTHER,
    "allow_all": ScheduleOverlapPolicy.ALLOW_ALL,
}
OVERLAP_NAME = {policy: name for name, policy in OVERLAP.items()}
MIN_INTERVAL_SECONDS = 1


@dataclass
class JobScheduleRequest:
    workflow_key: str
    input: Any
    cron: list[str] = field(default_factory=list)
    interval_seconds: int | None = None
    offset_seconds: int = 0
    time_zone: str = "UTC"
    overlap: str = "skip"
    paused: bool = False
    note: str | None = None


@dataclass
class JobSchedule:
    id: str
    workflow_key: str
    cron: list[str]
    interval_seconds: float | None
    offset_seconds: float | None
    time_zone: str
    paused: bool
    note: str | None
    next_action_times: list[datetime]
    recent_jobs: list[str]  # the jobs of the latest runs, oldest first (GET /v1/jobs/{id})
    running_jobs: list[str]
    overlap: str | None = None  # a listing does not carry the policy
    created_at: datetime | None = None
    updated_at: datetime | None = None
    kind: str = "job"


def _check_timing(req: JobScheduleRequest) -> None:
    if bool(req.cron) == (req.interval_seconds is not None):
        raise ScheduleInvalid("give either cron (one or more expressions) or interval_seconds", pointer="/cron")
    if req.interval_seconds is not None:
        if req.interval_seconds < MIN_INTERVAL_SECONDS:
            raise ScheduleInvalid(f"interval_seconds must be at least {MIN_INTERVAL_SECONDS}", "/interval_seconds")
        if not 0 <= req.offset_seconds < req.interval_seconds:
            raise ScheduleInvalid("offset_seconds must be at least 0 and less than the interval", "/offset_seconds")
    for i, expr in enumerate(req.cron):
        if not expr.strip().startswith("@") and len(expr.split()) not in (5, 6, 7):  # @daily, @every 2h
            raise ScheduleInvalid(
                f"cron expression {expr!r} needs 5 fields (minute hour day month weekday)", f"/cron/{i}"
            )
    try:
        zoneinfo.ZoneInfo(req.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
        raise ScheduleInvalid(f"unknown time zone {req.time_zone!r} (an IANA name: Europe/Berlin)", "/time_zone") from e
    if req.overlap not in OVERLAP:
        raise ScheduleInvalid(f"overlap must be one of {', '.join(OVERLAP)}", "/overlap")


async def check_request(engine: AsyncEngine, tenant_id: uuid.UUID, req: JobScheduleRequest) -> None:
    """The timing, and that the key has a definition whose input_schema the input meets."""
    _check_timing(req)
    async with tenant_session(engine, tenant_id) as session:
        try:
            await runnable_definition(session, req.workflow_key, req.input)
        except NotFound as e:
            raise Invalid("unknown_workflow", f"workflow {req.workflow_key!r} not found", "/workflow_key") from e
        except Invalid as e:
            raise Invalid(e.code, e.detail, "/input" + (e.pointer or "").rstrip("/")) from e


async def create_job_schedule(
    client: Client, settings: Settings, tenant_id: str | uuid.UUID, req: JobScheduleRequest
) -> JobSchedule:
    """Call check_request first: the input is checked against the definition there."""
    _check_timing(req)
    tenant = tenant_key(tenant_id)
    schedule_id = f"{job_prefix(tenant)}{uuid.uuid4().hex[:12]}"
    every = [] if req.interval_seconds is None else [req.interval_seconds]
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            SCHEDULED_JOB,
            ScheduledJobInput(tenant, schedule_id, req.workflow_key, req.input),
            id=schedule_id,  # Temporal appends the scheduled time to each run's id
            task_queue=settings.temporal_task_queue,
            typed_search_attributes=TypedSearchAttributes([SearchAttributePair(TENANT_ID, tenant)]),
            priority=job_priority(tenant),  # the job (a child) inherits it
        ),
        spec=ScheduleSpec(
            cron_expressions=list(req.cron),
            intervals=[
                ScheduleIntervalSpec(every=timedelta(seconds=s), offset=timedelta(seconds=req.offset_seconds))
                for s in every
            ],
            time_zone_name=req.time_zone,
        ),
        policy=SchedulePolicy(overlap=OVERLAP[req.overlap]),
        state=ScheduleState(paused=req.paused, note=req.note),
    )
    try:
        await client.create_schedule(
            schedule_id,
            schedule,
            memo={"kind": "job", "tenant_id": tenant, "workflow_key": req.workflow_key, "cron": list(req.cron)},
            search_attributes=TypedSearchAttributes([SearchAttributePair(TENANT_ID, tenant)]),
        )
    except ScheduleAlreadyRunningError as e:
        raise ScheduleExists(schedule_id) from e
    except RPCError as e:
        if e.status == RPCStatusCode.INVALID_ARGUMENT:  # what Temporal's own parsing refused
            raise ScheduleInvalid(f"Temporal refused the schedule: {e.message}", "/cron" if req.cron else "") from e
        raise
    return await describe_job_schedule(client, tenant, schedule_id)


def _jobs(actions: Sequence[ScheduleActionExecution]) -> list[str]:
    return [scheduled_job_id(w) for w in workflow_ids(actions)]


def _shape(
    schedule_id: str, memo: Mapping[str, Any], spec: ScheduleSpec | None, paused: bool, note: str | None
) -> JobSchedule:
    """What a listing and a description both carry; the caller fills in the rest."""
    every, offset = None, None
    if spec is not None and spec.intervals:
        every, at = spec.intervals[0].every.total_seconds(), spec.intervals[0].offset
        offset = at.total_seconds() if at else 0.0
    return JobSchedule(
        id=schedule_id,
        workflow_key=str(memo.get("workflow_key", "")),
        cron=list(memo.get("cron", [])),
        interval_seconds=every,
        offset_seconds=offset,
        time_zone=(spec.time_zone_name if spec else None) or "UTC",
        paused=paused,
        note=note,
        next_action_times=[],
        recent_jobs=[],
        running_jobs=[],
    )


async def describe_job_schedule(client: Client, tenant_id: str | uuid.UUID, schedule_id: str) -> JobSchedule:
    handle = owned(client, tenant_id, schedule_id)
    with not_found_as_typed(schedule_id):
        d = await handle.describe()
    info, state = d.info, d.schedule.state
    out = _shape(d.id, await d.memo(), d.schedule.spec, state.paused, state.note)
    out.next_action_times = list(info.next_action_times[:SHOWN_NEXT_TIMES])
    out.recent_jobs = _jobs([a.action for a in info.recent_actions])
    out.running_jobs = _jobs(info.running_actions)
    out.overlap = OVERLAP_NAME.get(d.schedule.policy.overlap)
    out.created_at, out.updated_at = info.created_at, info.last_updated_at
    return out


async def from_listing(s: ScheduleListDescription) -> JobSchedule:
    sched = s.schedule
    out = _shape(s.id, await s.memo(), sched.spec if sched else None, bool(sched and sched.state.paused), None)
    out.note = sched.state.note if sched else None
    if s.info is not None:
        out.next_action_times = list(s.info.next_action_times[:SHOWN_NEXT_TIMES])
        out.recent_jobs = _jobs([a.action for a in s.info.recent_actions])
    return out


async def list_job_schedules(client: Client, tenant_id: str | uuid.UUID) -> list[JobSchedule]:
    """From visibility, so eventually consistent: a schedule just created may lag a moment."""
    prefix = job_prefix(tenant_id)
    found = await client.list_schedules(f'ScheduleId STARTS_WITH "{prefix}"')
    # Filter again here: the prefix, not the query, is the tenant boundary.
    return sorted([await from_listing(s) async for s in found if s.id.startswith(prefix)], key=lambda s: s.id)
