"""LLM usage of the caller's tenant: tokens and cost over a time range, grouped."""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import SessionDep, Viewer
from api.problems import AUTHENTICATED, responses
from services import usage

router = APIRouter(prefix="/v1/usage", tags=["usage"], responses=AUTHENTICATED)


class UsageGroup(BaseModel):
    # the provider, model, workflow key, day (YYYY-MM-DD, UTC) or month (YYYY-MM, UTC: a monthly budget's period)
    key: str
    calls: int  # answers recorded (one per step or llm Task)
    tokens_in: int
    tokens_out: int
    cost_usd: float


class UsageReport(BaseModel):
    group_by: str
    groups: list[UsageGroup]
    total: dict[str, Any]


@router.get(
    "",
    response_model=UsageReport,
    responses=responses(422, descriptions={422: "a bad group_by or time, or from not before to"}),
)
async def get_usage(
    _: Viewer,
    session: SessionDep,
    start: Annotated[datetime | None, Query(alias="from", description="from this time on (UTC if naive)")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="before this time")] = None,
    group_by: Literal["provider", "model", "workflow", "day", "month"] = "provider",
) -> UsageReport:
    """Tokens and cost of the tenant's recorded LLM answers, from the price tables of its
    providers and LLM_PRICES, summed per group."""
    groups = await usage.report(session, start, end, group_by)
    total = {k: sum(g[k] for g in groups) for k in ("calls", "tokens_in", "tokens_out", "cost_usd")}
    return UsageReport(group_by=group_by, groups=[UsageGroup(**g) for g in groups], total=total)
