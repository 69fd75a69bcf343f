"""LLM usage read for the API: one job's summary, and the tenant's usage over a time range
grouped by provider, model, workflow or day. Every query runs in a tenant session (row-level
security keeps it to the caller's tenant)."""

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Date, cast, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from schema.tables import Job, UsageRecord
from services.errors import Invalid

GROUPS = ("provider", "model", "workflow", "day", "month")


def _totals(calls: int, tokens_in: int, tokens_out: int, cost: float) -> dict[str, Any]:
    return {"calls": calls, "tokens_in": tokens_in, "tokens_out": tokens_out, "cost_usd": round(cost, 8)}


def job_summary(rows: Iterable[UsageRecord]) -> dict[str, Any]:
    """A job's tokens and cost in all, and by provider and model."""
    by: dict[tuple[str, str], list[Any]] = {}
    for r in rows:
        acc = by.setdefault((r.provider, r.model), [0, 0, 0, 0.0])
        acc[0], acc[1], acc[2], acc[3] = acc[0] + 1, acc[1] + r.tokens_in, acc[2] + r.tokens_out, acc[3] + r.cost_usd
    total = [sum(v[i] for v in by.values()) for i in range(4)]
    return {
        **_totals(*total),
        "by_model": [{"provider": p, "model": m, **_totals(*v)} for (p, m), v in sorted(by.items())],
    }


def _utc(when: datetime | None) -> datetime | None:
    return when.replace(tzinfo=UTC) if when is not None and when.tzinfo is None else when


async def report(
    session: AsyncSession, start: datetime | None, end: datetime | None, group_by: str
) -> list[dict[str, Any]]:
    """The caller's usage rows created in [start, end), summed per group, in key order."""
    start, end = _utc(start), _utc(end)
    if start is not None and end is not None and start >= end:
        raise Invalid("invalid_range", "from must be before to", "/from")
    created = col(UsageRecord.created_at)
    key: Any = {
        "provider": col(UsageRecord.provider),
        "model": col(UsageRecord.model),
        "workflow": col(Job.workflow_key),
        "day": cast(func.timezone("UTC", created), Date),
        "month": func.to_char(func.timezone("UTC", created), "YYYY-MM"),
    }[group_by]
    query = select(
        key,
        func.count(),
        func.coalesce(func.sum(UsageRecord.tokens_in), 0),
        func.coalesce(func.sum(UsageRecord.tokens_out), 0),
        func.coalesce(func.sum(UsageRecord.cost_usd), 0.0),
    )
    if group_by == "workflow":
        query = query.join(Job, col(Job.id) == col(UsageRecord.job_id))
    if start is not None:
        query = query.where(created >= start)
    if end is not None:
        query = query.where(created < end)
    rows = (await session.exec(query.group_by(key).order_by(key))).all()
    return [{"key": str(k), **_totals(int(n), int(tin), int(tout), float(cost))} for k, n, tin, tout, cost in rows]
