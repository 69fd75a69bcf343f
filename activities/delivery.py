"""Webhook delivery: signed per Standard Webhooks, every attempt persisted, and a
delivered target is never sent again. Email delivery comes from EmailDelivery."""

import json

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.common import fail, secret_of
from activities.delivery_log import OpenDelivery, open_delivery, record_attempt
from activities.email_delivery import EmailDelivery
from lodestone.netguard import OutboundRefused, check_url
from lodestone.secrets import SecretsProvider
from lodestone.settings import Settings
from lodestone.webhooks import signed_headers
from workflows.types import DeliveryInput, DeliveryResult

RETRYABLE_STATUS = {408, 425, 429}


class DeliveryActivities(EmailDelivery):
    def __init__(self, engine: AsyncEngine, http: httpx.AsyncClient, settings: Settings,
                 secrets: SecretsProvider) -> None:
        self.engine, self.http, self.settings, self.secrets = engine, http, settings, secrets

    @activity.defn
    async def deliver_webhook(self, inp: DeliveryInput) -> DeliveryResult:
        opened = await open_delivery(self.engine, inp)
        delivery = opened.delivery
        if opened.delivered:
            return opened.result(delivery.attempts, 200)
        body = self._payload(inp, opened)
        secret = await secret_of(opened.tenant, self.secrets, inp.tenant_id, "webhook_secret",
                                 opened.tenant.webhook_secret) or opened.tenant.webhook_secret
        headers = signed_headers(secret, delivery.webhook_id, body)
        status, error = None, None
        try:
            resp = await self.http.post(check_url(delivery.target), content=body, headers=headers,
                                        timeout=self.settings.webhook_timeout_seconds)
            status = resp.status_code
        except OutboundRefused as e:
            await record_attempt(self.engine, inp.tenant_id, delivery, None, f"refused: {e}", final=True)
            raise fail("WebhookURLRefused", str(e)) from e
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}"
        rejected = status is not None and 400 <= status < 500 and status not in RETRYABLE_STATUS
        number = await record_attempt(self.engine, inp.tenant_id, delivery, status, error, final=rejected)
        if status is not None and 200 <= status < 300:
            return opened.result(number, status)
        if rejected:
            raise fail("WebhookRejected", f"{delivery.target} answered {status}")
        raise ApplicationError(f"{delivery.target}: {error or f'answered {status}'}",
                               type="WebhookUnavailable")

    def _payload(self, inp: DeliveryInput, opened: OpenDelivery) -> str:
        payload = {
            "type": "job.delivered",
            "timestamp": inp.event_time,
            "data": {
                "job_id": inp.job_id,
                "workflow_key": opened.loaded.job.workflow_key,
                "artifacts": [
                    {"id": str(a.id), "kind": a.kind, "content_type": a.content_type, "size": a.size,
                     "sha256": a.sha256, "url": f"{self.settings.api_url}/v1/artifacts/{a.id}"}
                    for a in opened.artifacts
                ],
            },
        }
        return json.dumps(payload, separators=(",", ":"))
