"""A job's events, read for its SSE stream: replayed from a seq, then followed live (woken by
the process's one LISTEN connection, or by the slow poll) until the job's `end` event."""

import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from activities.events import END
from lodestone.db import tenant_session, unavailable
from lodestone.pg_listen import Listener
from schema.statuses import TERMINAL
from schema.tables import Job, JobEvent
from services.errors import NotFound

log = logging.getLogger("lodestone.events")

READ_BATCH = 500
OUTAGE_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class StreamedEvent:
    seq: int
    type: str
    data: str  # the event's JSON object


async def check_job(engine: AsyncEngine, tenant_id: uuid.UUID, job_id: uuid.UUID) -> None:
    """NotFound unless the job is the tenant's (row-level security hides the others')."""
    async with tenant_session(engine, tenant_id) as session:
        if await session.get(Job, job_id) is None:
            raise NotFound("job", job_id)


async def read_after(
    engine: AsyncEngine, tenant_id: uuid.UUID, job_id: uuid.UUID, after: int, limit: int = READ_BATCH
) -> tuple[list[JobEvent], str | None]:
    """Up to `limit` events after seq `after`, in order, and the job's status now."""
    async with tenant_session(engine, tenant_id) as session:
        query = select(JobEvent).where(JobEvent.job_id == job_id, col(JobEvent.seq) > after)
        rows = (await session.exec(query.order_by(col(JobEvent.seq)).limit(limit))).all()
        status = (await session.exec(select(Job.status).where(Job.id == job_id))).first()
    return list(rows), status


async def follow(
    engine: AsyncEngine, listener: Listener, tenant_id: uuid.UUID, job_id: uuid.UUID, after: int, poll: float
) -> AsyncIterator[StreamedEvent]:
    """Every event after seq `after`, each once and in order, ending after the job's `end`
    event (or at once for a finished job that recorded none)."""
    last_type: str | None = None
    with listener.subscribe(str(job_id)) as waiter:
        while True:
            waiter.woken.clear()  # before the read: a NOTIFY during it wakes the next wait
            try:
                rows, status = await read_after(engine, tenant_id, job_id, after)
            except Exception as e:
                if not unavailable(e):
                    raise
                log.warning("job %s: events unreadable (%s), retrying", job_id, type(e).__name__)
                await waiter.wait(OUTAGE_RETRY_SECONDS)
                continue
            for row in rows:
                yield StreamedEvent(row.seq, row.type, json.dumps(row.data))
                after, last_type = row.seq, row.type
            if len(rows) == READ_BATCH:
                continue
            # A job's end event commits with its terminal status: a terminal job with nothing
            # left to read ended before it recorded events (or was deleted).
            if last_type == END or (not rows and (status is None or status in TERMINAL)):
                return
            await waiter.wait(poll)
