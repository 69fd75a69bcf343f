"""A tenant's LLM budgets (docs/budgets.md): read with their spend in the current period,
replaced whole, and the tenant's paused jobs told so (the `budget_changed` signal)."""

import contextlib
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.client import Client

from activities.budget_ledger import spend
from lodestone.budget import period_bounds
from lodestone.db import tenant_session
from lodestone.netguard import OutboundRefused, check_url
from schema.budgets import LlmBudget
from schema.statuses import JobStatus
from schema.tables import Job, utcnow
from services.errors import Invalid
from workflows.budget_pause import BUDGET_SIGNAL

MAX_BUDGETS = 64


@dataclass(frozen=True)
class BudgetSpec:
    scope: str  # "" the tenant's, else a workflow key's
    unit: str
    amount: float
    period: str
    notify_url: str | None = None


async def read(engine: AsyncEngine, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    now = utcnow()
    out = []
    async with tenant_session(engine, tenant_id) as session:
        rows = (await session.exec(select(LlmBudget).order_by(col(LlmBudget.scope)))).all()
        for b in rows:
            used = await spend(session, b, now)
            start, end = period_bounds(b.period, b.starts_at, now)
            out.append(
                {
                    "workflow_key": b.scope or None,
                    "unit": b.unit,
                    "amount": b.amount,
                    "period": b.period,
                    "notify_url": b.notify_url,
                    "period_start": start,
                    "period_end": end,
                    "spent": round(used.settled, 8),
                    "reserved": round(used.reserved, 8),
                }
            )
    return out


async def replace(engine: AsyncEngine, temporal: Client, tenant_id: uuid.UUID, specs: list[BudgetSpec]) -> int:
    """Replace the tenant's budgets (a budget kept with the same scope, unit and period keeps
    its start, so a fixed one counts on); signal every paused job. The number signalled."""
    scopes = [s.scope for s in specs]
    if len(set(scopes)) != len(scopes):
        raise Invalid("duplicate_budget", "at most one budget per workflow_key (and one for the tenant)", "/budgets")
    for i, s in enumerate(specs):
        if s.notify_url is not None:
            try:
                check_url(s.notify_url)
            except OutboundRefused as e:
                raise Invalid("invalid_notify_url", str(e), f"/budgets/{i}/notify_url") from e
    now = utcnow()
    async with tenant_session(engine, tenant_id) as session:
        old = {b.scope: b for b in (await session.exec(select(LlmBudget).with_for_update())).all()}
        await session.execute(delete(LlmBudget))
        for s in specs:
            kept = old.get(s.scope)
            same = kept is not None and (kept.unit, kept.period) == (s.unit, s.period)
            session.add(
                LlmBudget(
                    tenant_id=tenant_id,
                    scope=s.scope,
                    unit=s.unit,
                    amount=s.amount,
                    period=s.period,
                    notify_url=s.notify_url,
                    starts_at=kept.starts_at if same and kept else now,
                    updated_at=now,
                )
            )
        paused = (await session.exec(select(Job.id).where(Job.status == JobStatus.paused_budget))).all()
    for job_id in paused:
        with contextlib.suppress(Exception):  # ended meanwhile; a paused job also re-checks by itself
            await temporal.get_workflow_handle(str(job_id)).signal(BUDGET_SIGNAL)
    return len(paused)
