"""Recording that a submitted job's workflow started (jobs.workflow_started_at), off the
request's path: the API answers once Temporal has the start, and a background task records
the jobs started meanwhile, one UPDATE (one round trip) per tenant per batch.

A record lost (the database out of reach, the API killed first) costs nothing but time:
the worker's outbox finds the job pending and unrecorded, starts it (Temporal answers
"already started") and records it."""

import asyncio
import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from lodestone.db import run_in_tenant
from schema.tables import Job

log = logging.getLogger("lodestone.api")


async def record_started(engine: AsyncEngine, tenant_id: uuid.UUID, job_ids: list[uuid.UUID]) -> None:
    """Take the jobs out of the outbox, in one round trip; it is only ever set, never cleared."""
    ids = ",".join(f'"{uuid.UUID(str(j))}"' for j in job_ids)  # UUIDs' text: nothing to escape
    await run_in_tenant(
        engine,
        tenant_id,
        f"UPDATE jobs SET workflow_started_at = now() WHERE id = ANY('{{{ids}}}'::uuid[]) "
        "AND workflow_started_at IS NULL",
    )


class StartRecorder:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._due: dict[uuid.UUID, list[uuid.UUID]] = {}
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def add(self, job: Job) -> None:
        self._due.setdefault(job.tenant_id, []).append(job.id)
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Record what is due, then end."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while not (self._closing and not self._due):
            await self._wake.wait()
            self._wake.clear()
            due, self._due = self._due, {}
            for tenant_id, job_ids in due.items():
                try:
                    await record_started(self.engine, tenant_id, job_ids)
                except Exception as e:  # noqa: BLE001 - the outbox records them
                    log.warning("%d started jobs not recorded as started: %s", len(job_ids), type(e).__name__)
