"""Webhook delivery: signed per Standard Webhooks, every attempt persisted, and a
delivered target is never sent again."""

import json
import uuid

import httpx
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.common import fail, load_job, tenant_secret
from lodestone.db import tenant_session
from lodestone.netguard import OutboundRefused, check_url
from lodestone.secrets import SecretsProvider
from lodestone.settings import Settings
from lodestone.webhooks import signed_headers, webhook_id
from schema.tables import Artifact, Delivery, DeliveryAttempt, Tenant, utcnow
from workflows.types import DeliveryInput, DeliveryResult

RETRYABLE_STATUS = {408, 425, 429}


class DeliveryActivities:
    def __init__(self, engine: AsyncEngine, http: httpx.AsyncClient, settings: Settings,
                 secrets: SecretsProvider) -> None:
        self.engine, self.http, self.settings, self.secrets = engine, http, settings, secrets

    @activity.defn
    async def deliver_webhook(self, inp: DeliveryInput) -> DeliveryResult:
        attempt = activity.info().attempt
        delivery, body, secret = await self._prepare(inp)
        if delivery.status == "delivered":
            return DeliveryResult(str(delivery.id), delivery.webhook_id, delivery.attempts, 200)
        headers = signed_headers(secret, delivery.webhook_id, body)
        status, error = None, None
        try:
            resp = await self.http.post(check_url(delivery.target), content=body, headers=headers,
                                        timeout=self.settings.webhook_timeout_seconds)
            status = resp.status_code
        except OutboundRefused as e:
            await self._record(inp, delivery, attempt, None, f"refused: {e}", final=True)
            raise fail("WebhookURLRefused", str(e)) from e
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}"
        await self._record(inp, delivery, attempt, status, error)
        if status is not None and 200 <= status < 300:
            return DeliveryResult(str(delivery.id), delivery.webhook_id, attempt, status)
        if status is not None and 400 <= status < 500 and status not in RETRYABLE_STATUS:
            raise fail("WebhookRejected", f"{delivery.target} answered {status}")
        raise ApplicationError(f"{delivery.target}: {error or f'answered {status}'}",
                               type="WebhookUnavailable")

    async def _prepare(self, inp: DeliveryInput) -> tuple[Delivery, str, str]:
        async with tenant_session(self.engine, inp.tenant_id) as session:
            loaded = await load_job(session, inp.job_id)
            target = loaded.definition["delivery"][inp.target_index]
            tenant = await session.get(Tenant, uuid.UUID(inp.tenant_id))
            artifacts = (await session.exec(select(Artifact).where(Artifact.job_id == loaded.job.id))).all()
            await session.execute(insert(Delivery).values(
                id=uuid.uuid4(), tenant_id=uuid.UUID(inp.tenant_id), job_id=loaded.job.id,
                target_index=inp.target_index, kind=target["type"], target=target["url"],
                webhook_id=webhook_id(inp.job_id, inp.target_index), status="pending", attempts=0,
            ).on_conflict_do_nothing(index_elements=["job_id", "target_index"]))
            delivery = (await session.exec(select(Delivery).where(
                Delivery.job_id == loaded.job.id, Delivery.target_index == inp.target_index))).one()
        assert tenant is not None
        payload = {
            "type": "job.delivered",
            "timestamp": inp.event_time,
            "data": {
                "job_id": inp.job_id,
                "workflow_key": loaded.job.workflow_key,
                "artifacts": [
                    {"id": str(a.id), "kind": a.kind, "content_type": a.content_type, "size": a.size,
                     "sha256": a.sha256, "url": f"{self.settings.api_url}/v1/artifacts/{a.id}"}
                    for a in sorted(artifacts, key=lambda a: a.kind)
                ],
            },
        }
        async with tenant_session(self.engine, inp.tenant_id) as session:
            secret = await tenant_secret(session, self.secrets, inp.tenant_id, "webhook_secret", tenant.webhook_secret)
        return delivery, json.dumps(payload, separators=(",", ":")), secret or tenant.webhook_secret

    async def _record(self, inp: DeliveryInput, delivery: Delivery, attempt: int,
                      status: int | None, error: str | None, final: bool = False) -> None:
        ok = status is not None and 200 <= status < 300
        async with tenant_session(self.engine, inp.tenant_id) as session:
            stmt = insert(DeliveryAttempt).values(
                id=uuid.uuid4(), tenant_id=uuid.UUID(inp.tenant_id), delivery_id=delivery.id,
                attempt=attempt, webhook_id=delivery.webhook_id, status_code=status, error=error,
                created_at=utcnow())
            await session.execute(stmt.on_conflict_do_update(
                index_elements=["delivery_id", "attempt"],
                set_={"status_code": status, "error": error, "created_at": utcnow()}))
            row = await session.get(Delivery, delivery.id)
            assert row is not None
            row.attempts = max(row.attempts, attempt)
            if ok:
                row.status, row.delivered_at = "delivered", utcnow()
            elif final or (status is not None and 400 <= status < 500 and status not in RETRYABLE_STATUS):
                row.status = "failed"
            session.add(row)
