"""Webhook delivery: signed per Standard Webhooks, every attempt persisted, and a
delivered target is never sent again. Email delivery comes from EmailDelivery, SMS and
WhatsApp from SmsDelivery and WhatsAppDelivery (send_webhook sends them by the target's
type, so the workflow drives them as it drives webhooks), the bookkeeping all share from
DeliveryLog.

send_webhook sends and returns what happened; it writes nothing after the send, so a
database error can never make it send again (the workflow records the outcome with
record_delivery_attempt). deliver_webhook, send and record in one activity, is kept for
runs recorded before the workflow split them."""

import asyncio
import dataclasses
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import errors
from activities.common import secret_of
from activities.delivery_log import (
    DeliveryInput,
    DeliveryLog,
    DeliveryResult,
    OpenDelivery,
    SendOutcome,
    open_delivery,
    record_attempt,
)
from activities.email_delivery import EmailDelivery
from activities.sms_delivery import SmsDelivery
from activities.whatsapp_delivery import WhatsAppDelivery
from lodestone import links
from lodestone.netguard import OutboundRefused, check_url
from lodestone.secrets import SecretsProvider
from lodestone.settings import Settings
from lodestone.webhooks import signed_headers
from schema.tables import Artifact, Tenant

RETRYABLE_STATUS = {408, 425, 429}


def webhook_timeout(settings: Settings, target: dict[str, Any]) -> float:
    """The target's own timeout_seconds, else WEBHOOK_TIMEOUT_SECONDS; never above the max."""
    return min(
        float(target.get("timeout_seconds") or settings.webhook_timeout_seconds), settings.webhook_timeout_max_seconds
    )


async def signing_secret(tenant: Tenant, secrets: SecretsProvider, tenant_id: str) -> str:
    """The secret the tenant's webhooks are signed with: its reference's, else the row's."""
    return await secret_of(tenant, secrets, tenant_id, "webhook_secret", tenant.webhook_secret) or tenant.webhook_secret


def described(settings: Settings, tenant_id: str, artifact: Artifact, issued: datetime) -> dict[str, Any]:
    """An artifact as a job.delivered webhook describes it: `url` needs a bearer token,
    `download_url` (a signed link, as emails carry) does not until `download_expires_at`."""
    url, expires = links.delivered_link(settings, artifact.id, uuid.UUID(tenant_id), issued.timestamp())
    return {
        "id": str(artifact.id),
        "kind": artifact.kind,
        "content_type": artifact.content_type,
        "size": artifact.size,
        "sha256": artifact.sha256,
        "url": f"{settings.api_url}/v1/artifacts/{artifact.id}",
        "download_url": url,
        "download_expires_at": datetime.fromtimestamp(expires, UTC).isoformat(),
    }


@dataclass
class WebhookAnswer:
    """How one signed POST went: accepted (error_type None), or why not and whether another
    attempt may do better."""

    status_code: int | None = None
    error: str | None = None
    error_type: str | None = None
    retryable: bool = False


async def post_webhook(
    http: httpx.AsyncClient, url: str, body: str, headers: dict[str, str], limit: float
) -> WebhookAnswer:
    """POST body to url through the outbound guard, the whole request within `limit` seconds."""
    try:
        # httpx's timeout bounds each connect, write and read; a receiver trickling its
        # answer would keep the POST alive past the activity's own timeout, and Temporal's
        # retry would POST again beside it. The whole request ends within `limit`.
        async with asyncio.timeout(limit):
            resp = await http.post(check_url(url), content=body, headers=headers, timeout=limit)
    except OutboundRefused as e:
        return WebhookAnswer(error=f"refused: {e}", error_type=errors.WEBHOOK_URL_REFUSED)
    except TimeoutError:
        return WebhookAnswer(
            error=f"TimeoutError: no complete answer within {limit:g} s",
            error_type=errors.WEBHOOK_UNAVAILABLE,
            retryable=True,
        )
    except httpx.HTTPError as e:
        return WebhookAnswer(error=f"{type(e).__name__}: {e}", error_type=errors.WEBHOOK_UNAVAILABLE, retryable=True)
    status = resp.status_code
    if 200 <= status < 300:
        return WebhookAnswer(status_code=status)
    if 300 <= status < 400:
        return WebhookAnswer(
            status_code=status,
            error_type=errors.WEBHOOK_REDIRECTED,
            error=f"answered {status}: redirects are not followed, so the target fails",
        )
    if 400 <= status < 500 and status not in RETRYABLE_STATUS:
        return WebhookAnswer(status_code=status, error=f"answered {status}", error_type=errors.WEBHOOK_REJECTED)
    return WebhookAnswer(
        status_code=status, error=f"answered {status}", error_type=errors.WEBHOOK_UNAVAILABLE, retryable=True
    )


class DeliveryActivities(EmailDelivery, SmsDelivery, WhatsAppDelivery, DeliveryLog):
    def __init__(
        self, engine: AsyncEngine, http: httpx.AsyncClient, settings: Settings, secrets: SecretsProvider
    ) -> None:
        self.engine, self.http, self.settings, self.secrets = engine, http, settings, secrets

    @activity.defn
    async def send_webhook(self, inp: DeliveryInput) -> SendOutcome:
        opened = await open_delivery(self.engine, inp)
        if opened.delivered:
            return opened.outcome(sent=False, status_code=200)
        kind = opened.target["type"]
        if kind == "sms":
            return await self._send_sms(inp, opened)
        if kind == "whatsapp":
            return await self._send_whatsapp(inp, opened)
        return await self._post(inp, opened)

    @activity.defn
    async def deliver_webhook(self, inp: DeliveryInput) -> DeliveryResult:
        opened = await open_delivery(self.engine, inp)
        if opened.delivered:
            return opened.result(opened.delivery.attempts, 200)
        out = await self._post(inp, opened)
        number, _, _ = await record_attempt(
            self.engine, inp.tenant_id, opened.delivery, out.status_code, out.error, final=not (out.ok or out.retryable)
        )
        if out.ok:
            return opened.result(number, out.status_code or 200)
        raise ApplicationError(
            f"{opened.delivery.target}: {out.error}", type=out.error_type, non_retryable=not out.retryable
        )

    async def _post(self, inp: DeliveryInput, opened: OpenDelivery) -> SendOutcome:
        """One POST; its outcome. Nothing here writes to the database."""
        delivery = opened.delivery
        body = self._payload(inp, opened)
        secret = await signing_secret(opened.tenant, self.secrets, inp.tenant_id)
        headers = signed_headers(secret, delivery.webhook_id, body)
        limit = webhook_timeout(self.settings, opened.target)
        answer = await post_webhook(self.http, delivery.target, body, headers, limit)
        return opened.outcome(**dataclasses.asdict(answer))

    def _payload(self, inp: DeliveryInput, opened: OpenDelivery) -> str:
        # Links are minted from the workflow's event time, so every retry sends the same body.
        issued = datetime.fromisoformat(inp.event_time)
        payload = {
            "type": "job.delivered",
            "timestamp": inp.event_time,
            "data": {
                "job_id": inp.job_id,
                "workflow_key": opened.loaded.job.workflow_key,
                "artifacts": [described(self.settings, inp.tenant_id, a, issued) for a in opened.artifacts],
            },
        }
        return json.dumps(payload, separators=(",", ":"))
