"""The caller's LLM budgets: per tenant and per workflow key, in US dollars or tokens, per
calendar month or a fixed amount (docs/budgets.md)."""

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Admin, StateDep, Viewer
from api.problems import AUTHENTICATED, responses
from services import budgets

router = APIRouter(prefix="/v1/budgets", tags=["budgets"], responses=AUTHENTICATED)


class BudgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workflow_key: str | None = Field(default=None, min_length=1, max_length=200, description="none: every job")
    unit: Literal["usd", "tokens"]
    amount: float = Field(ge=0, le=1e12)
    period: Literal["monthly", "fixed"] = "monthly"
    notify_url: str | None = Field(default=None, max_length=2048, description="80% and 100% notices go here")


class Budget(BudgetIn):
    period_start: datetime
    period_end: datetime | None  # none: a fixed budget
    spent: float  # settled usage in the period, in `unit`
    reserved: float  # calls in flight


class BudgetsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    budgets: list[BudgetIn] = Field(max_length=budgets.MAX_BUDGETS)


class Budgets(BaseModel):
    budgets: list[Budget]
    signalled: int | None = None  # PUT: the paused jobs told to try again


@router.get("", response_model=Budgets)
async def get_budgets(state: StateDep, principal: Viewer) -> Budgets:
    return Budgets(budgets=[Budget(**b) for b in await budgets.read(state.engine, principal.tenant_id)])


@router.put(
    "",
    response_model=Budgets,
    responses=responses(
        400, 422, descriptions={422: "a bad unit, period or amount, a refused notify_url, or two for one scope"}
    ),
)
async def put_budgets(body: BudgetsIn, state: StateDep, principal: Admin) -> Budgets:
    """Replace the tenant's budgets. Every job paused on a budget (`paused_budget`) tries
    again at once; one that still does not fit pauses again."""
    specs = [budgets.BudgetSpec(b.workflow_key or "", b.unit, b.amount, b.period, b.notify_url) for b in body.budgets]
    signalled = await budgets.replace(state.engine, state.temporal, principal.tenant_id, specs)
    now = await budgets.read(state.engine, principal.tenant_id)
    return Budgets(budgets=[Budget(**b) for b in now], signalled=signalled)
