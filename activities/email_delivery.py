"""Email delivery: one message per target over SMTP, carrying signed download links to the
job's artifacts and a Message-ID derived from the delivery's stable id, so a receiver can
de-duplicate a retry. Every attempt is persisted; a delivered target is never sent again."""

import uuid
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.common import fail, heartbeating
from activities.delivery_log import OpenDelivery, open_delivery, record_attempt
from lodestone import links, mail
from lodestone.settings import Settings
from workflows.types import DeliveryInput, DeliveryResult


class EmailDelivery:
    """Mixed into DeliveryActivities, which brings the engine and settings."""

    engine: AsyncEngine
    settings: Settings

    @activity.defn
    async def deliver_email(self, inp: DeliveryInput) -> DeliveryResult:
        opened = await open_delivery(self.engine, inp)
        delivery = opened.delivery
        if opened.delivered:
            return opened.result(delivery.attempts, 250)
        try:
            async with heartbeating():
                code = await mail.send(self.settings, self._message(inp, opened))
        except mail.MailError as e:
            transient = isinstance(e, mail.MailUnavailable)
            await record_attempt(self.engine, inp.tenant_id, delivery, e.code, str(e), final=not transient)
            if isinstance(e, mail.MailNotConfigured):
                raise fail("EmailNotConfigured", str(e)) from e
            if not transient:
                raise fail("EmailRejected", f"{delivery.target}: {e}") from e
            raise ApplicationError(f"{delivery.target}: {e}", type="EmailUnavailable") from e
        number = await record_attempt(self.engine, inp.tenant_id, delivery, code, None)
        return opened.result(number, code)

    def _message(self, inp: DeliveryInput, opened: OpenDelivery) -> EmailMessage:
        # Links are minted from the workflow's event time, so every retry sends the same message.
        issued = datetime.fromisoformat(inp.event_time)
        ttl = self.settings.link_max_ttl_seconds
        key, tenant = links.signing_key(self.settings), uuid.UUID(inp.tenant_id)
        artifact_links = [
            mail.ArtifactLink(a.kind, a.content_type, a.size, f"{self.settings.api_url}/v1/artifacts/{a.id}/download?"
                              + links.mint(key, a.id, tenant, ttl, now=issued.timestamp()).query())
            for a in opened.artifacts]
        return mail.delivery_message(
            sender=self.settings.smtp_from, to=opened.delivery.target, delivery_id=opened.delivery.webhook_id,
            job_id=inp.job_id, workflow_key=opened.loaded.job.workflow_key, when=issued, links=artifact_links,
            expires=issued + timedelta(seconds=ttl))
