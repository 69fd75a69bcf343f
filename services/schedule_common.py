"""What every Lodestone schedule shares, for the API and the CLI alike: the tenant boundary
(an id's prefix), the errors, and the calls that work on any of the tenant's schedules.

A summary schedule (services/schedules.py) is `summary:{tenant_id}:{contact_id}`, a job
schedule (services/job_schedules.py) `job:{tenant_id}:{hex}`. Every call that names a schedule
checks that its id carries one of the tenant's prefixes first, and a foreign schedule raises
the same ScheduleNotFound as a missing one, so a tenant learns nothing about another's."""

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from temporalio.client import (
    Client,
    ScheduleActionExecution,
    ScheduleActionExecutionStartWorkflow,
    ScheduleBackfill,
    ScheduleHandle,
    ScheduleOverlapPolicy,
)
from temporalio.service import RPCError, RPCStatusCode

MAX_BACKFILL = timedelta(days=366)
SHOWN_NEXT_TIMES = 3


class ScheduleError(Exception):
    pass


class ScheduleNotFound(ScheduleError):
    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"schedule {schedule_id} not found")
        self.schedule_id = schedule_id


class ScheduleExists(ScheduleError):
    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"schedule {schedule_id} already exists")
        self.schedule_id = schedule_id


class ScheduleInvalid(ScheduleError, ValueError):
    def __init__(self, message: str, pointer: str | None = None) -> None:
        super().__init__(message)
        self.pointer = pointer  # the request's field at fault, as a JSON pointer


def tenant_key(tenant_id: str | uuid.UUID) -> str:
    # Canonical form; it also keeps the visibility query below free of injected quotes.
    try:
        return str(uuid.UUID(str(tenant_id)))
    except ValueError as e:
        raise ScheduleInvalid(f"tenant id {tenant_id!r} is not a UUID") from e


def summary_prefix(tenant_id: str | uuid.UUID) -> str:
    return f"summary:{tenant_key(tenant_id)}:"


def job_prefix(tenant_id: str | uuid.UUID) -> str:
    return f"job:{tenant_key(tenant_id)}:"


def is_job_schedule(schedule_id: str) -> bool:
    return schedule_id.startswith("job:")


@contextmanager
def not_found_as_typed(schedule_id: str) -> Iterator[None]:
    try:
        yield
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            raise ScheduleNotFound(schedule_id) from e
        raise


def owned(client: Client, tenant_id: str | uuid.UUID, schedule_id: str) -> ScheduleHandle:
    if not schedule_id.startswith((summary_prefix(tenant_id), job_prefix(tenant_id))):
        raise ScheduleNotFound(schedule_id)
    return client.get_schedule_handle(schedule_id)


def workflow_ids(actions: Sequence[ScheduleActionExecution]) -> list[str]:
    return [a.workflow_id for a in actions if isinstance(a, ScheduleActionExecutionStartWorkflow)]


async def pause_schedule(client: Client, tenant_id: str | uuid.UUID, schedule_id: str, note: str | None = None) -> None:
    with not_found_as_typed(schedule_id):
        await owned(client, tenant_id, schedule_id).pause(note=note or "paused")


async def unpause_schedule(
    client: Client, tenant_id: str | uuid.UUID, schedule_id: str, note: str | None = None
) -> None:
    with not_found_as_typed(schedule_id):
        await owned(client, tenant_id, schedule_id).unpause(note=note or "unpaused")


async def trigger_schedule(client: Client, tenant_id: str | uuid.UUID, schedule_id: str) -> tuple[str, list[str]]:
    """Start a run now. A job schedule's always runs (ALLOW_ALL). A summary schedule's goes
    under its own SKIP policy: while a summary is still running, a trigger is dropped rather
    than send the contact a second, overlapping PDF. Returns the policy and the runs in flight
    just before the trigger; under SKIP, if any, the trigger was skipped."""
    handle = owned(client, tenant_id, schedule_id)
    overlap = ScheduleOverlapPolicy.ALLOW_ALL if is_job_schedule(schedule_id) else ScheduleOverlapPolicy.SKIP
    with not_found_as_typed(schedule_id):
        running = workflow_ids((await handle.describe()).info.running_actions)
        await handle.trigger(overlap=overlap)
    return overlap.name, running


def check_backfill(start: datetime, end: datetime, now: datetime | None = None) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ScheduleInvalid("start and end need a timezone")
    if end <= start:
        raise ScheduleInvalid("end must be after start")
    if end - start > MAX_BACKFILL:
        raise ScheduleInvalid(f"a backfill spans at most {MAX_BACKFILL.days} days")
    if end > (now or datetime.now(UTC)):
        raise ScheduleInvalid("a backfill covers past time only")


async def backfill_schedule(
    client: Client,
    tenant_id: str | uuid.UUID,
    schedule_id: str,
    start: datetime,
    end: datetime,
    overlap: ScheduleOverlapPolicy = ScheduleOverlapPolicy.ALLOW_ALL,
) -> None:
    """Run every fire time in [start, end) now. Temporal's bounds are inclusive at both ends,
    so end is pulled in by 1 µs. Backfilled runs cover distinct past windows, so by default
    they use ALLOW_ALL: under SKIP each would be dropped while the one before it is still running."""
    check_backfill(start, end)
    handle = owned(client, tenant_id, schedule_id)
    with not_found_as_typed(schedule_id):
        await handle.backfill(ScheduleBackfill(start_at=start, end_at=end - timedelta(microseconds=1), overlap=overlap))


async def delete_schedule(client: Client, tenant_id: str | uuid.UUID, schedule_id: str) -> None:
    """Runs already started keep going; only future fires stop."""
    with not_found_as_typed(schedule_id):
        await owned(client, tenant_id, schedule_id).delete()
