"""A job's progress events, written from the activities (the workflow never sees them, so
they add nothing to its history): appended to job_events with the job's next seq, and
announced with NOTIFY so the API's open streams wake (api/routers/job_events.py).

seq is 1, 2, 3... per job with no gaps: an append holds a transaction-scoped advisory lock on
the job while it reads max(seq) and inserts, so two activities of one job appending at once
queue on it instead of racing for the same number; a transaction that rolls back takes its
seq with it. NOTIFY is sent by PostgreSQL at commit, so a woken stream always finds the row."""

import json
import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from lodestone.db import tenant_session
from schema.statuses import TERMINAL

log = logging.getLogger("lodestone.events")

# The NOTIFY channel; the payload is the job id.
CHANNEL = "lodestone_job_events"

STATUS, STEP, STATE, TOKEN, ARTIFACT, DELIVERY, END = "status", "step", "state", "token", "artifact", "delivery", "end"

# Its own statement: the INSERT's snapshot must be taken after the lock is held, so that it
# sees the row of the append it waited for.
_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(CAST(:job_id AS text), 19))")
_APPEND = text(
    """
    WITH added AS (
        INSERT INTO job_events (job_id, seq, tenant_id, type, data, created_at)
        SELECT CAST(:job_id AS uuid), coalesce(max(seq), 0) + 1, CAST(:tenant_id AS uuid), :type,
               CAST(:data AS jsonb), clock_timestamp()
        FROM job_events WHERE job_id = CAST(:job_id AS uuid)
        RETURNING seq
    )
    SELECT seq, pg_notify(:channel, CAST(:job_id AS text)) FROM added
    """
)


async def append(session: AsyncSession, tenant_id: str, job_id: str, type_: str, data: dict[str, Any]) -> int:
    """Append one event in the session's transaction; returns its seq. The lock is held until
    that transaction ends: keep it short."""
    params = {
        "job_id": str(job_id),
        "tenant_id": str(tenant_id),
        "type": type_,
        "data": json.dumps(data),
        "channel": CHANNEL,
    }
    await session.execute(_LOCK, {"job_id": params["job_id"]})
    seq = (await session.execute(_APPEND, params)).scalar_one()
    return int(seq)


async def emit(engine: AsyncEngine, tenant_id: str, job_id: str, type_: str, data: dict[str, Any]) -> int:
    """Append one event in a transaction of its own."""
    async with tenant_session(engine, tenant_id) as session:
        return await append(session, tenant_id, job_id, type_, data)


async def status_changed(session: AsyncSession, tenant_id: str, job_id: str, status: str, error: str | None) -> None:
    """A job's status changed (in this session's transaction): its `status` event, and its
    `end` event when the status is terminal."""
    await append(session, tenant_id, job_id, STATUS, {"status": status, "error": error})
    if status in TERMINAL:
        await append(session, tenant_id, job_id, END, {"status": status, "error": error})


async def best_effort(engine: AsyncEngine, tenant_id: str, job_id: str, type_: str, data: dict[str, Any]) -> None:
    """Emit, logging instead of raising: for events that report what already happened and
    must not fail the activity that reports it (its own retry would repeat the work)."""
    try:
        await emit(engine, tenant_id, job_id, type_, data)
    except Exception as e:
        log.warning("job %s: %s event not recorded: %s", job_id, type_, type(e).__name__)
