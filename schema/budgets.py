"""LLM budgets and their ledger (lodestone/budget.py, activities/budget_ledger.py)."""

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from schema.columns import _tenant, _ts


class LlmBudget(SQLModel, table=True):
    """A tenant's budget: `scope` "" for all its jobs, else one workflow key's."""

    __tablename__ = "llm_budgets"
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", primary_key=True)
    scope: str = Field(default="", primary_key=True)
    unit: str  # usd | tokens
    amount: float
    period: str  # monthly | fixed
    notify_url: str | None = None  # where the 80% and 100% notices go (signed with the webhook secret)
    starts_at: datetime = _ts()  # a fixed budget counts from here
    updated_at: datetime = _ts()


class LlmLedgerEntry(SQLModel, table=True):
    """One LLM call: reserved before it is sent, settled with its usage after, or released.
    `call_key` names the call within its job (step or Task path, call number, provider, model),
    so an attempt that runs the call again replaces its entry instead of adding one."""

    __tablename__ = "llm_ledger"
    __table_args__ = (
        UniqueConstraint("job_id", "call_key"),
        Index("ix_llm_ledger_tenant_created", "tenant_id", "created_at"),
        Index("ix_llm_ledger_reserved", "tenant_id", "expires_at", postgresql_where=text("state = 'reserved'")),
    )
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = _tenant()
    job_id: uuid.UUID = Field(foreign_key="jobs.id")
    workflow_key: str
    call_key: str
    provider: str
    model: str
    state: str  # reserved | settled | released
    reserved_tokens: int
    reserved_usd: float
    tokens: int = 0  # settled: tokens in + out
    cost_usd: float = 0.0
    created_at: datetime = _ts()  # when it was (last) reserved: the period it counts in
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))  # a reservation not settled by then counts 0
    settled_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class LlmBudgetNotice(SQLModel, table=True):
    """A notice sent: one per budget, period and threshold."""

    __tablename__ = "llm_budget_notices"
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", primary_key=True)
    scope: str = Field(primary_key=True)
    period_start: datetime = Field(sa_type=DateTime(timezone=True), primary_key=True)
    threshold: int = Field(primary_key=True)
    sent_at: datetime = _ts()
