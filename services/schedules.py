"""Summary schedules: one Temporal Schedule per contact, `summary:{tenant_id}:{contact_id}`,
firing SummaryWorkflow every interval_days. The tenant boundary and the calls every schedule
shares are in services/schedule_common.py."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleDescription,
    ScheduleIntervalSpec,
    ScheduleListDescription,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from lodestone.db import tenant_session
from lodestone.settings import Settings
from schema.conversations import Contact
from services.errors import Invalid, NotFound
from services.schedule_common import (
    SHOWN_NEXT_TIMES,
    ScheduleExists,
    ScheduleInvalid,
    ScheduleNotFound,
    is_job_schedule,
    not_found_as_typed,
    owned,
    summary_prefix,
    tenant_key,
    workflow_ids,
)
from workflows.names import SUMMARY
from workflows.types import TENANT_ID, SummaryInput

MAX_INTERVAL_DAYS = 365
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class SummarySchedule:
    id: str
    contact_id: str
    interval_days: int
    paused: bool
    note: str | None
    next_action_times: list[datetime]
    recent_actions: list[str]  # workflow ids, in the order they started
    running: list[str]
    overlap: str | None = None  # a listing does not carry the policy
    created_at: datetime | None = None
    updated_at: datetime | None = None
    kind: str = "summary"


def summary_schedule_id(tenant_id: str | uuid.UUID, contact_id: str | uuid.UUID) -> str:
    return f"{summary_prefix(tenant_id)}{contact_id}"


def _summary_schedule(settings: Settings, tenant: str, contact_id: str, interval_days: int) -> Schedule:
    schedule_id = summary_schedule_id(tenant, contact_id)
    every = timedelta(days=interval_days)
    # Phase the interval from now: the first summary comes one interval after creation,
    # and contacts' summaries spread over the period instead of all firing at the epoch grid.
    offset = timedelta(seconds=int(((datetime.now(UTC) - _EPOCH) % every).total_seconds()))
    return Schedule(
        action=ScheduleActionStartWorkflow(
            SUMMARY,
            SummaryInput(tenant, contact_id, interval_days),
            id=schedule_id,  # Temporal appends the nominal fire time to each run's id
            task_queue=settings.temporal_task_queue,
            typed_search_attributes=TypedSearchAttributes([SearchAttributePair(TENANT_ID, tenant)]),
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every, offset=offset)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def summary_contact(engine: AsyncEngine, *, tenant_id: uuid.UUID, contact_id: uuid.UUID) -> Contact:
    """The tenant's contact a summary schedule would send to, if it has a WhatsApp number."""
    async with tenant_session(engine, tenant_id) as session:
        contact = await session.get(Contact, contact_id)
    if contact is None or contact.tenant_id != tenant_id:
        raise NotFound("contact", contact_id)
    if not contact.phone_number_id:
        raise Invalid("contact_not_reachable", "the contact has no WhatsApp number to send summaries to")
    return contact


async def create_summary_schedule(
    client: Client,
    settings: Settings,
    tenant_id: str | uuid.UUID,
    contact_id: str | uuid.UUID,
    interval_days: int | None = None,
) -> SummarySchedule:
    tenant, contact = tenant_key(tenant_id), str(contact_id)
    days = settings.summary_interval_days if interval_days is None else interval_days
    if not 1 <= days <= MAX_INTERVAL_DAYS:
        raise ScheduleInvalid(f"interval_days must be between 1 and {MAX_INTERVAL_DAYS}")
    schedule_id = summary_schedule_id(tenant, contact)
    try:
        await client.create_schedule(
            schedule_id,
            _summary_schedule(settings, tenant, contact, days),
            memo={"kind": "summary", "tenant_id": tenant, "contact_id": contact},
            search_attributes=TypedSearchAttributes([SearchAttributePair(TENANT_ID, tenant)]),
        )
    except ScheduleAlreadyRunningError as e:
        raise ScheduleExists(schedule_id) from e
    return await describe_summary_schedule(client, tenant, schedule_id)


def _from_listing(s: ScheduleListDescription) -> SummarySchedule:
    intervals = s.schedule.spec.intervals if s.schedule else []
    return SummarySchedule(
        id=s.id,
        contact_id=s.id.rsplit(":", 1)[-1],
        interval_days=intervals[0].every.days if intervals else 0,
        paused=bool(s.schedule and s.schedule.state.paused),
        note=s.schedule.state.note if s.schedule else None,
        next_action_times=list(s.info.next_action_times[:SHOWN_NEXT_TIMES]) if s.info else [],
        recent_actions=workflow_ids([a.action for a in s.info.recent_actions]) if s.info else [],
        running=[],
    )


def _from_description(d: ScheduleDescription) -> SummarySchedule:
    intervals, state, info = d.schedule.spec.intervals, d.schedule.state, d.info
    return SummarySchedule(
        id=d.id,
        contact_id=d.id.rsplit(":", 1)[-1],
        interval_days=intervals[0].every.days if intervals else 0,
        paused=state.paused,
        note=state.note,
        next_action_times=list(info.next_action_times[:SHOWN_NEXT_TIMES]),
        recent_actions=workflow_ids([a.action for a in info.recent_actions]),
        running=workflow_ids(info.running_actions),
        overlap=d.schedule.policy.overlap.name,
        created_at=info.created_at,
        updated_at=info.last_updated_at,
    )


async def list_summary_schedules(client: Client, tenant_id: str | uuid.UUID) -> list[SummarySchedule]:
    """From visibility, so eventually consistent: a schedule just created may lag a moment."""
    prefix = summary_prefix(tenant_id)
    found = await client.list_schedules(f'ScheduleId STARTS_WITH "{prefix}"')
    # Filter again here: the prefix, not the query, is the tenant boundary.
    return sorted([_from_listing(s) async for s in found if s.id.startswith(prefix)], key=lambda s: s.id)


async def describe_summary_schedule(client: Client, tenant_id: str | uuid.UUID, schedule_id: str) -> SummarySchedule:
    if is_job_schedule(schedule_id):
        raise ScheduleNotFound(schedule_id)
    handle = owned(client, tenant_id, schedule_id)
    with not_found_as_typed(schedule_id):
        return _from_description(await handle.describe())
