"""A job's progress events, written from the activities (the workflow never sees them, so
they add nothing to its history): appended to job_events with the job's next seq, and
announced with NOTIFY so the API's open streams wake (api/routers/job_events.py).

seq is 1, 2, 3... per job with no gaps: an append holds a transaction-scoped advisory lock on
the job while it reads max(seq) and inserts, so two activities of one job appending at once
queue on it instead of racing for the same number; a transaction that rolls back takes its
seq with it. NOTIFY is sent by PostgreSQL at commit, so a woken stream always finds the row."""

import asyncio
import contextlib
import json
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.common import RetryPolicy

from lodestone.db import tenant_session
from schema.columns import utcnow
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
        SELECT CAST(:job_id AS uuid), last.seq + e.n, CAST(:tenant_id AS uuid), e.item->>'type', e.item->'data',
               clock_timestamp()
        FROM (SELECT coalesce(max(seq), 0) AS seq FROM job_events WHERE job_id = CAST(:job_id AS uuid)) AS last,
             json_array_elements(CAST(:events AS json)) WITH ORDINALITY AS e(item, n)
        RETURNING seq
    )
    SELECT max(seq), pg_notify(:channel, CAST(:job_id AS text)) FROM added
    """
)


async def append_many(
    session: AsyncSession, tenant_id: str, job_id: str, items: list[tuple[str, dict[str, Any]]]
) -> int:
    """Append events (type, data) in order, in the session's transaction; returns the last
    one's seq. The lock is held until that transaction ends: keep it short."""
    params = {
        "job_id": str(job_id),
        "tenant_id": str(tenant_id),
        "events": json.dumps([{"type": t, "data": d} for t, d in items]),
        "channel": CHANNEL,
    }
    await session.execute(_LOCK, {"job_id": params["job_id"]})
    return int((await session.execute(_APPEND, params)).scalar_one())


async def append(session: AsyncSession, tenant_id: str, job_id: str, type_: str, data: dict[str, Any]) -> int:
    """Append one event in the session's transaction; returns its seq."""
    return await append_many(session, tenant_id, job_id, [(type_, data)])


async def emit(engine: AsyncEngine, tenant_id: str, job_id: str, type_: str, data: dict[str, Any]) -> int:
    """Append one event in a transaction of its own."""
    async with tenant_session(engine, tenant_id) as session:
        return await append(session, tenant_id, job_id, type_, data)


async def status_changed(session: AsyncSession, tenant_id: str, job_id: str, status: str, error: str | None) -> None:
    """A job's status changed (in this session's transaction): its `status` event, and its
    `end` event when the status is terminal."""
    data = {"status": status, "error": error}
    await append_many(session, tenant_id, job_id, [(STATUS, data), *([(END, data)] if status in TERMINAL else [])])


async def best_effort(engine: AsyncEngine, tenant_id: str, job_id: str, type_: str, data: dict[str, Any]) -> None:
    """Emit, logging instead of raising: for events that report what already happened and
    must not fail the activity that reports it (its own retry would repeat the work)."""
    try:
        await emit(engine, tenant_id, job_id, type_, data)
    except Exception as e:
        log.warning("job %s: %s event not recorded: %s", job_id, type_, type(e).__name__)


def step_data(
    step: str, status: str, attempt: int, error: str | None = None, next_attempt_at: str | None = None
) -> dict[str, Any]:
    return {"step": step, "status": status, "attempt": attempt, "error": error, "next_attempt_at": next_attempt_at}


def next_attempt_at(delay: timedelta | None = None) -> str | None:
    """When Temporal starts the running activity's next attempt (after `delay` when the error
    asked for one, else after its retry policy's backoff); None when this attempt is its last."""
    info = activity.info()
    policy = info.retry_policy or RetryPolicy()
    if policy.maximum_attempts and info.attempt >= policy.maximum_attempts:
        return None
    if delay is None:
        backoff = policy.initial_interval * policy.backoff_coefficient ** (info.attempt - 1)
        delay = min(backoff, policy.maximum_interval or policy.initial_interval * 100)
    return (utcnow() + delay).isoformat()


class TokenStream:
    """An LLM answer's text as `token` events, as the model produces it: the pieces that arrive
    within one flush interval become one event (PostgreSQL is not written per token), and the
    rest is written when the answer ends. Writing is best effort: a token event that cannot be
    written is logged and the answer goes on (the step's stored output is what counts)."""

    def __init__(
        self, engine: AsyncEngine, tenant_id: str, job_id: str, step: str, every: float, attempt: int | None = None
    ) -> None:
        """step: the step's id, or a state machine Task's path; attempt: the activity's own unless given."""
        self.engine, self.tenant_id, self.job_id, self.step, self.every = engine, tenant_id, job_id, step, every
        self.attempt = attempt if attempt is not None else activity.info().attempt
        self._buffer: list[str] = []
        self._flusher: asyncio.Task[None] | None = None
        self._sleeping = False
        self._lock = asyncio.Lock()

    async def __call__(self, text: str) -> None:
        self._buffer.append(text)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        self._sleeping = True
        try:
            await asyncio.sleep(self.every)
        finally:
            self._sleeping = False
        await self.flush()

    async def flush(self) -> None:
        async with self._lock:  # one write at a time, so events keep the text's order
            text, self._buffer = "".join(self._buffer), []
            if text:
                data = {"step": self.step, "attempt": self.attempt, "text": text}
                await best_effort(self.engine, self.tenant_id, self.job_id, TOKEN, data)

    async def __aenter__(self) -> "TokenStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._flusher is not None and not self._flusher.done():
            if self._sleeping:  # not writing yet: what it would write is written below
                self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()
