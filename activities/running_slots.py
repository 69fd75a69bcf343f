"""Running slots: at most `max_running_jobs` jobs of a tenant run at once (TENANT_MAX_RUNNING_JOBS,
overridable per tenant); the rest wait `queued` and start in order (workflows/running_slot.py).

The count derives from the job rows, so no bookkeeping of its own can leak: a job holds a
slot from its claim (jobs.slot_at set) until it is terminal, however it ended. A claim takes a
transaction-scoped advisory lock on the tenant, so two claims at once never both see the last
free slot. A job is granted a slot when the slots held plus the jobs waiting ahead of it (in
QUEUE_ORDER) leave one free, so a later job never overtakes an earlier one.

A child execution (jobs.parent_job_id set) runs inside its parent's slot: it neither claims nor
holds one, so a parent waiting on its children never waits on its own tenant's limit.

A run terminated by an operator or timed out never writes its job's end. A waiting job that
finds the tenant full looks, at most once a DEAD_CHECK_EVERY per tenant, for the tenant's
closed runs whose job still says queued or processing, and marks those jobs failed
(RUN_ENDED), which frees what they held and takes them out of the queue."""

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, text, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from activities import events
from activities.common import job_row
from lodestone.db import tenant_session
from lodestone.settings import Settings
from lodestone.tenant_limits import effective
from schema.statuses import TERMINAL, JobStatus
from schema.tables import Job, Tenant, utcnow

log = logging.getLogger("lodestone.running_slots")

SLOT_SIGNAL = "running-slot-free"  # sent to a waiting job's workflow (id = job id) when a slot frees
DEAD_CHECK_EVERY = timedelta(seconds=60)
DEAD_CHECK_MAX = 100  # closed runs looked at per check
RUN_ENDED = "run_ended"
_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(CAST(:tenant AS text), 22))")


def queue_order() -> list[Any]:
    """The order waiting jobs start in: oldest first (the one place a priority would go first)."""
    return [col(Job.created_at), col(Job.id)]


def _ahead_of(job: Job) -> ColumnElement[bool]:
    return tuple_(*queue_order()) < tuple_(job.created_at, job.id)


def _held(tenant_id: uuid.UUID) -> Any:
    return select(func.count()).where(
        col(Job.tenant_id) == tenant_id, col(Job.slot_at).is_not(None), col(Job.status).not_in(TERMINAL)
    )


def _waiting(tenant_id: uuid.UUID) -> list[ColumnElement[bool]]:
    return [
        col(Job.tenant_id) == tenant_id,
        col(Job.status) == JobStatus.queued,
        col(Job.slot_at).is_(None),
        col(Job.parent_job_id).is_(None),
    ]


@dataclass
class SlotRef:
    tenant_id: str
    job_id: str


@dataclass
class SlotAnswer:
    granted: bool
    held: int = 0  # slots held by the tenant's jobs
    ahead: int = 0  # jobs waiting ahead of this one
    limit: int = 0


async def _limit(session: AsyncSession, settings: Settings, tenant_id: uuid.UUID) -> tuple[Tenant | None, int]:
    tenant = await session.get(Tenant, tenant_id)
    return tenant, effective(settings, tenant.limits if tenant else None).max_running_jobs


async def claim(engine: AsyncEngine, settings: Settings, ref: SlotRef) -> tuple[SlotAnswer, bool]:
    """Take a slot for the job if one is free for it; and whether to look for ended runs."""
    tenant_id = uuid.UUID(ref.tenant_id)
    async with tenant_session(engine, tenant_id) as s:
        await s.execute(_LOCK, {"tenant": ref.tenant_id})
        job = await job_row(s, ref.job_id)
        if job.status in TERMINAL or job.parent_job_id is not None or job.slot_at is not None:
            return SlotAnswer(True), False  # nothing to run, its parent's slot, or taken already (a retry)
        tenant, limit = await _limit(s, settings, tenant_id)
        held = (await s.exec(_held(tenant_id))).one()
        ahead = (await s.exec(select(func.count()).where(*_waiting(tenant_id), _ahead_of(job)))).one()
        if held + ahead < limit:
            job.slot_at = utcnow()
            s.add(job)
            return SlotAnswer(True, held, ahead, limit), False
        now = utcnow()
        last = tenant.slots_checked_at if tenant else now
        check = tenant is not None and (last is None or now - last >= DEAD_CHECK_EVERY)
        if check and tenant is not None:
            tenant.slots_checked_at = now
            s.add(tenant)
        return SlotAnswer(False, held, ahead, limit), check


async def release_ended_runs(engine: AsyncEngine, client: Client, tenant_id: str) -> int:
    """Mark failed the tenant's jobs still queued or processing whose latest run has closed
    (terminated, timed out): what they held is free and they wait no more. How many."""
    query = (
        f"TenantId = '{uuid.UUID(tenant_id)}' AND ExecutionStatus != 'Running'"
        " AND JobStatus IN ('queued', 'processing')"
    )
    released = 0
    seen = 0
    async for run in client.list_workflows(query, page_size=DEAD_CHECK_MAX):
        seen += 1
        if seen > DEAD_CHECK_MAX:
            break
        try:
            latest = await client.get_workflow_handle(run.id).describe()
        except RPCError:
            continue
        if latest.status == WorkflowExecutionStatus.RUNNING:
            continue  # redriven since
        how = latest.status.name.lower() if latest.status else "closed"
        async with tenant_session(engine, tenant_id) as s:
            job = await s.get(Job, uuid.UUID(run.id))
            if job is None or job.status in TERMINAL:
                continue
            job.status, job.updated_at = JobStatus.failed, utcnow()
            job.error = f"{RUN_ENDED}: its workflow run ended ({how}) before the job finished"
            s.add(job)
            await events.status_changed(s, tenant_id, run.id, JobStatus.failed, job.error)
        released += 1
    if released:
        log.info("tenant %s: %d jobs whose runs ended without finishing marked failed", tenant_id, released)
    return released


async def wake_next(engine: AsyncEngine, settings: Settings, client: Client, tenant_id: str) -> list[str]:
    """Signal the first waiting jobs of the tenant, as many as there are free slots."""
    tid = uuid.UUID(tenant_id)
    async with tenant_session(engine, tid) as s:
        _, limit = await _limit(s, settings, tid)
        free = limit - (await s.exec(_held(tid))).one()
        if free <= 0:
            return []
        first = select(Job.id).where(*_waiting(tid)).order_by(*queue_order()).limit(free)
        ids = [str(i) for i in (await s.exec(first)).all()]
    for job_id in ids:
        try:
            await client.get_workflow_handle(job_id).signal(SLOT_SIGNAL)
        except RPCError as e:
            log.info("job %s: slot signal not delivered: %s", job_id, e.status)
    return ids


def _client() -> Client | None:
    try:
        return activity.client()
    except RuntimeError:
        return None


async def job_ended(engine: AsyncEngine, settings: Settings, tenant_id: str) -> None:
    """After a job's end is committed: wake the tenant's next waiting jobs. Best effort (a
    waiting job also checks again by itself), so it never fails the activity that ended it."""
    client = _client()
    if client is None:
        return
    try:
        await wake_next(engine, settings, client, tenant_id)
    except Exception as e:
        log.warning("tenant %s: waiting jobs not woken: %s", tenant_id, type(e).__name__)


class SlotActivities:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    @activity.defn
    async def claim_running_slot(self, ref: SlotRef) -> SlotAnswer:
        answer, check = await claim(self.engine, self.settings, ref)
        client = _client() if check else None
        if client is not None and await release_ended_runs(self.engine, client, ref.tenant_id):
            answer, _ = await claim(self.engine, self.settings, ref)
            await wake_next(self.engine, self.settings, client, ref.tenant_id)
        return answer
