"""How ops commands reach PostgreSQL; each command picks one of these on purpose.

- operator_session, on the owner role (DATABASE_ADMIN_URL): the only cross-tenant access,
  and read only. It lists dead letters and finds the tenant a job or delivery id belongs
  to. Row-level security stays on: the transaction opts in with app.operator = 'on', which
  only the owner's `operator_read` policies honour (migration 0007), and it is READ ONLY,
  so the opt-in can never write.
- tenant_session on the app role (DATABASE_URL): every write (resetting a job, marking a
  dead letter, reopening a delivery), confined by RLS to the one tenant the row belongs to,
  the same path the worker's activities take.
"""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from lodestone.db import make_engine
from schema.tables import Delivery, Job


@asynccontextmanager
async def engine(url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(url, 1)
    try:
        yield eng
    finally:
        await eng.dispose()


@asynccontextmanager
async def operator_session(owner: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(owner, expire_on_commit=False) as session, session.begin():
        await session.execute(text("SET TRANSACTION READ ONLY"))
        await session.execute(text("SELECT set_config('app.operator', 'on', true)"))
        yield session


async def job_tenant(owner: AsyncEngine, job_id: uuid.UUID) -> uuid.UUID | None:
    async with operator_session(owner) as session:
        return (await session.exec(select(Job.tenant_id).where(col(Job.id) == job_id))).first()


async def delivery_owner(owner: AsyncEngine, delivery_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(tenant id, job id) of a delivery."""
    async with operator_session(owner) as session:
        row = (
            await session.exec(select(Delivery.tenant_id, Delivery.job_id).where(col(Delivery.id) == delivery_id))
        ).first()
    return None if row is None else (row[0], row[1])
