"""Email delivery: one message per target over SMTP, carrying signed download links to the
job's artifacts and a Message-ID derived from the delivery's stable id, so a receiver can
de-duplicate a retry. Every attempt is persisted; a delivered target is never sent again.
send_email writes nothing after the send: the workflow records its outcome."""

import uuid
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import errors
from activities.common import heartbeating
from activities.delivery_log import (
    DeliveryInput,
    DeliveryResult,
    OpenDelivery,
    SendOutcome,
    open_delivery,
    record_attempt,
)
from lodestone import links, mail
from lodestone.settings import Settings
from schema.tables import Artifact


def artifact_links(
    settings: Settings, tenant_id: str, artifacts: list[Artifact], issued: datetime
) -> list[mail.ArtifactLink]:
    """Signed download links, minted as of `issued` so that every retry sends the same ones."""
    tenant = uuid.UUID(tenant_id)
    return [
        mail.ArtifactLink(
            a.kind, a.content_type, a.size, links.delivered_link(settings, a.id, tenant, issued.timestamp())[0]
        )
        for a in artifacts
    ]


class EmailDelivery:
    """Mixed into DeliveryActivities, which brings the engine and settings."""

    engine: AsyncEngine
    settings: Settings

    @activity.defn
    async def send_email(self, inp: DeliveryInput) -> SendOutcome:
        opened = await open_delivery(self.engine, inp)
        if opened.delivered:
            return opened.outcome(sent=False, status_code=250)
        return await self._send(inp, opened)

    @activity.defn
    async def deliver_email(self, inp: DeliveryInput) -> DeliveryResult:
        """Send and record in one activity: what runs recorded before the workflow split them call."""
        opened = await open_delivery(self.engine, inp)
        if opened.delivered:
            return opened.result(opened.delivery.attempts, 250)
        out = await self._send(inp, opened)
        number, _, _ = await record_attempt(
            self.engine, inp.tenant_id, opened.delivery, out.status_code, out.error, final=not (out.ok or out.retryable)
        )
        if out.ok:
            return opened.result(number, out.status_code or 250)
        raise ApplicationError(
            f"{opened.delivery.target}: {out.error}", type=out.error_type, non_retryable=not out.retryable
        )

    async def _send(self, inp: DeliveryInput, opened: OpenDelivery) -> SendOutcome:
        """One message; its outcome. Nothing here writes to the database."""
        try:
            async with heartbeating():
                code = await mail.send(self.settings, self._message(inp, opened))
        except mail.MailError as e:
            kind = errors.code_of(e)
            return opened.outcome(
                status_code=e.code, error=str(e), error_type=kind, retryable=kind == errors.EMAIL_UNAVAILABLE
            )
        return opened.outcome(status_code=code)

    def _message(self, inp: DeliveryInput, opened: OpenDelivery) -> EmailMessage:
        # Links are minted from the workflow's event time, so every retry sends the same message.
        issued = datetime.fromisoformat(inp.event_time)
        ttl = self.settings.link_max_ttl_seconds
        return mail.delivery_message(
            sender=self.settings.smtp_from,
            to=opened.delivery.target,
            delivery_id=opened.delivery.webhook_id,
            job_id=inp.job_id,
            workflow_key=opened.loaded.job.workflow_key,
            when=issued,
            links=artifact_links(self.settings, inp.tenant_id, opened.artifacts, issued),
            expires=issued + timedelta(seconds=ttl),
        )
