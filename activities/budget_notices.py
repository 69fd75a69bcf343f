"""Notices at 80% and 100% of an LLM budget: once per budget, period and threshold (a row in
llm_budget_notices marks it sent before it goes), as a webhook to the budget's notify_url,
signed like deliveries with the tenant's webhook secret (Standard Webhooks headers). A
budget without a notify_url records its notices and sends nothing. Best effort: a notice
that cannot be sent is logged and not tried again."""

import json
import logging
import uuid
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from activities.budget_ledger import budgets_of, spend
from activities.common import secret_of
from lodestone.budget import period_bounds, reached
from lodestone.db import tenant_session
from lodestone.netguard import guarded_client
from lodestone.secrets import SecretsProvider
from lodestone.webhooks import signed_headers
from schema.budgets import LlmBudgetNotice
from schema.tables import Job, Tenant, utcnow

log = logging.getLogger(__name__)
_NAMESPACE = uuid.UUID("4a0c2f3e-8d1b-4f6a-9c2e-7b5d3a1e0f92")


async def after_settle(
    engine: AsyncEngine, settings: Any, secrets: SecretsProvider | None, tenant_id: str, job_id: str
) -> None:
    try:
        await _notify(engine, settings, secrets, tenant_id, job_id)
    except Exception:  # a notice never fails the call it follows
        log.warning("budget notice failed", exc_info=True)


async def _notify(
    engine: AsyncEngine, settings: Any, secrets: SecretsProvider | None, tenant_id: str, job_id: str
) -> None:
    now, due = utcnow(), []
    async with tenant_session(engine, tenant_id) as session:
        key = (await session.exec(select(Job.workflow_key).where(Job.id == uuid.UUID(job_id)))).first() or ""
        for budget in await budgets_of(session, key):
            used = await spend(session, budget, now)
            start, _ = period_bounds(budget.period, budget.starts_at, now)
            for threshold in reached(used.settled, budget.amount):
                row = insert(LlmBudgetNotice).values(
                    tenant_id=budget.tenant_id, scope=budget.scope, period_start=start, threshold=threshold, sent_at=now
                )
                sent = LlmBudgetNotice.__table__.c.threshold  # type: ignore[attr-defined]
                new = await session.execute(row.on_conflict_do_nothing().returning(sent))
                if new.first() is not None and budget.notify_url:
                    body = {
                        "type": "budget.threshold",
                        "threshold_percent": threshold,
                        "scope": budget.scope or None,
                        "unit": budget.unit,
                        "amount": budget.amount,
                        "spent": round(used.settled, 8),
                        "period_start": start.isoformat(),
                    }
                    due.append((budget.notify_url, f"{budget.scope}:{start.isoformat()}:{threshold}", body))
        tenant = await session.get(Tenant, uuid.UUID(tenant_id)) if due else None
    if not due or tenant is None:
        return
    secret = tenant.webhook_secret
    if secrets is not None:
        secret = await secret_of(tenant, secrets, tenant_id, "webhook_secret", secret) or secret
    async with guarded_client(settings.outbound_allow_cidrs, timeout=settings.webhook_timeout_seconds) as http:
        for url, ident, body in due:
            text = json.dumps(body)
            msg_id = "msg_" + uuid.uuid5(_NAMESPACE, f"{tenant_id}:{ident}").hex
            try:
                resp = await http.post(url, content=text, headers=signed_headers(secret, msg_id, text))
                resp.raise_for_status()
            except Exception as e:
                log.warning("budget notice to %s not delivered: %s", url, e)
