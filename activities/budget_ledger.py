"""The budget ledger (docs/budgets.md): every LLM call reserves its worst case before it is
sent and settles its usage after. A reservation that does not fit a budget of the tenant (or
of the job's workflow) is refused: BudgetExhausted, and the call is not sent.

Reserving locks the tenant's budget rows (FOR UPDATE), so concurrent reservations of one
tenant, on any worker, are counted one after another. An entry is keyed by (job, call key):
an attempt that makes the same call again replaces the entry (counted once, with the latest
usage). A reservation whose worker died counts until expires_at
(BUDGET_RESERVATION_SECONDS), then nothing; the next reservation of the tenant (when it has
a budget) marks it released, and the same call's retry takes it over at once."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from lodestone import metrics
from lodestone.budget import Charge, period_bounds
from lodestone.db import tenant_session
from lodestone.settings import Settings
from schema.budgets import LlmBudget, LlmLedgerEntry
from schema.tables import Job, utcnow

LEDGER = LlmLedgerEntry.__table__  # type: ignore[attr-defined]  # sqlmodel types __table__ without .c


class BudgetExhausted(Exception):
    """A call's reservation does not fit a budget: it is not sent. `wait_seconds`: when the
    paused job tries again at the latest (the period's roll-over, or the re-check interval)."""

    def __init__(self, message: str, wait_seconds: float) -> None:
        super().__init__(message)
        self.wait_seconds = wait_seconds


@dataclass(frozen=True)
class Spend:
    settled: float
    reserved: float


async def spend(session: Any, budget: LlmBudget, now: datetime, exclude: tuple[uuid.UUID, str] | None = None) -> Spend:
    """A budget's settled spend and live reservations in the period `now` is in, in its unit."""
    start, end = period_bounds(budget.period, budget.starts_at, now)
    c = LEDGER.c
    tokens = budget.unit == "tokens"
    settled_col, reserved_col = (c.tokens, c.reserved_tokens) if tokens else (c.cost_usd, c.reserved_usd)
    live = and_(c.state == "reserved", c.expires_at > now)
    query = select(
        func.coalesce(func.sum(case((c.state == "settled", settled_col), else_=0)), 0),
        func.coalesce(func.sum(case((live, reserved_col), else_=0)), 0),
    ).where(c.tenant_id == budget.tenant_id, c.created_at >= start)
    if end is not None:
        query = query.where(c.created_at < end)
    if budget.scope:
        query = query.where(c.workflow_key == budget.scope)
    if exclude is not None:
        query = query.where(or_(c.job_id != exclude[0], c.call_key != exclude[1]))
    settled, reserved = (await session.execute(query)).one()
    return Spend(float(settled), float(reserved))


async def budgets_of(session: Any, workflow_key: str, *, lock: bool = False) -> list[LlmBudget]:
    query = select(LlmBudget).where(col(LlmBudget.scope).in_(("", workflow_key))).order_by(col(LlmBudget.scope))
    return list((await session.exec(query.with_for_update() if lock else query)).all())


async def reserve(
    engine: AsyncEngine,
    settings: Settings,
    tenant_id: str,
    job_id: str,
    call_key: str,
    provider: str,
    model: str,
    charge: Charge,
) -> bool:
    """Hold `charge` for the call, or raise BudgetExhausted. True when a budget applies."""
    now = utcnow()
    job = uuid.UUID(job_id)
    refused: BudgetExhausted | None = None
    async with tenant_session(engine, tenant_id) as session:
        workflow_key = (await session.exec(select(Job.workflow_key).where(Job.id == job))).first() or ""
        budgets = await budgets_of(session, workflow_key, lock=True)
        if budgets:
            await session.execute(
                update(LEDGER)
                .where(LEDGER.c.state == "reserved", LEDGER.c.expires_at <= now)
                .values(state="released", settled_at=now)
            )
        for budget in budgets:
            used = await spend(session, budget, now, exclude=(job, call_key))
            metrics.budget_spend(tenant_id, budget.scope, budget.unit, used.settled, used.reserved)
            if used.settled + used.reserved + charge.amount(budget.unit) > budget.amount:
                refused = refusal(settings, budget, used, charge, now)
                break
        if refused is None:
            values = {
                "state": "reserved",
                "provider": provider,
                "model": model,
                "reserved_tokens": charge.tokens,
                "reserved_usd": charge.usd,
                "tokens": 0,
                "cost_usd": 0.0,
                "created_at": now,
                "expires_at": now + timedelta(seconds=settings.budget_reservation_seconds),
                "settled_at": None,
            }
            stmt = insert(LEDGER).values(
                id=uuid.uuid4(),
                tenant_id=uuid.UUID(tenant_id),
                job_id=job,
                workflow_key=workflow_key,
                call_key=call_key,
                **values,
            )
            await session.execute(stmt.on_conflict_do_update(index_elements=["job_id", "call_key"], set_=values))
    if refused is not None:
        metrics.BUDGET_REFUSALS.labels(tenant_id).inc()
        raise refused
    return bool(budgets)


def refusal(settings: Settings, budget: LlmBudget, used: Spend, charge: Charge, now: datetime) -> BudgetExhausted:
    _, end = period_bounds(budget.period, budget.starts_at, now)
    wait = settings.budget_recheck_seconds
    if end is not None:
        wait = min(wait, max((end - now).total_seconds(), 1.0))
    name = f"the {budget.scope!r} workflow's" if budget.scope else "the tenant's"
    return BudgetExhausted(
        f"{name} {budget.period} LLM budget of {budget.amount:g} {budget.unit} has {used.settled:g} spent and "
        f"{used.reserved:g} reserved; this call needs up to {charge.amount(budget.unit):g}",
        wait,
    )


async def settle(engine: AsyncEngine, tenant_id: str, job_id: str, call_key: str, tokens: int, cost_usd: float) -> None:
    """The call's usage replaces its reservation (also one the sweep released meanwhile)."""
    await _end(engine, tenant_id, job_id, call_key, state="settled", tokens=tokens, cost_usd=cost_usd)


async def release(engine: AsyncEngine, tenant_id: str, job_id: str, call_key: str) -> None:
    """The call failed before an answer: its reservation counts nothing."""
    await _end(engine, tenant_id, job_id, call_key, state="released", tokens=0, cost_usd=0.0)


async def _end(engine: AsyncEngine, tenant_id: str, job_id: str, call_key: str, **values: Any) -> None:
    async with tenant_session(engine, tenant_id) as session:
        await session.execute(
            update(LEDGER)
            .where(LEDGER.c.job_id == uuid.UUID(job_id), LEDGER.c.call_key == call_key)
            .values(settled_at=utcnow(), **values)
        )
