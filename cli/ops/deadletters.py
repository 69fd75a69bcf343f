"""Dead letters across tenants: the operator_dead_letters view (migration 0007), read
through the owner's opt-in, read-only operator session."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.operator_db import operator_session

COLUMNS = (
    "job_id",
    "tenant_id",
    "tenant_name",
    "workflow_key",
    "job_status",
    "failed_step",
    "error_code",
    "message",
    "created_at",
    "redriven_at",
)


@dataclass
class DeadLetter:
    job_id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_name: str
    workflow_key: str
    job_status: str
    failed_step: str | None
    error_code: str
    message: str
    created_at: datetime
    redriven_at: datetime | None


async def list_dead_letters(
    owner: AsyncEngine, tenant: uuid.UUID | None = None, limit: int = 50, everything: bool = False
) -> list[DeadLetter]:
    """Newest first. By default only jobs that are failed now: a redriven job that is running
    or delivered drops out (everything=True keeps it), one that failed again is back."""
    where, params = [], {"limit": limit}
    if tenant is not None:
        where.append("tenant_id = :tenant")
        params["tenant"] = tenant
    if not everything:
        where.append("job_status = 'failed'")
    query = (
        f"SELECT {', '.join(COLUMNS)} FROM operator_dead_letters "
        f"{'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY created_at DESC, job_id LIMIT :limit"
    )
    async with operator_session(owner) as session:
        rows = (await session.execute(text(query), params)).all()
    return [DeadLetter(*row) for row in rows]
