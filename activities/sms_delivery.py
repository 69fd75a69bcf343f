"""SMS delivery (Twilio), and what sms and whatsapp targets share: the recipient and text
filled from the job (lodestone/message_text.py), a signed link to the job's report, and the
tenant's send rate per country (lodestone/token_bucket.py). Like email, a send returns its
outcome and writes nothing after it; the workflow records it and retries what may succeed."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.exceptions import ApplicationError

from activities import errors
from activities.common import secret_of
from activities.delivery_log import DeliveryInput, OpenDelivery, SendOutcome
from lodestone import links, token_bucket
from lodestone.message_text import TextInvalid, calling_code, fill, recipient
from lodestone.secrets import SecretsProvider
from lodestone.settings import Settings
from lodestone.sms import SmsAccount, SmsError, send_sms

DEFAULT_TEXT = "Your report {{ job.workflow_key }} is ready:"
MAX_TEXT = 1600  # Twilio's longest message body


@dataclass
class Message:
    to: str
    body: str


def compose(settings: Settings, inp: DeliveryInput, opened: OpenDelivery) -> Message:
    """The target's recipient and text for this job, the text ending in a signed download link
    to the PDF (else the HTML), minted as of the event time so that every retry sends the same.
    Raises TextInvalid when the input does not fill them."""
    target = opened.target
    job = {"id": inp.job_id, "workflow_key": opened.loaded.job.workflow_key}
    to = recipient(target["to"], opened.loaded.input, job)
    text = fill(target.get("text") or DEFAULT_TEXT, opened.loaded.input, job).strip()
    report = sorted(opened.artifacts, key=lambda a: a.kind != "pdf")
    if report:
        issued = datetime.fromisoformat(inp.event_time).timestamp()
        url, _ = links.delivered_link(settings, report[0].id, uuid.UUID(inp.tenant_id), issued)
        text = f"{text[: MAX_TEXT - len(url) - 1]}\n{url}"
    return Message(to, text[:MAX_TEXT])


async def hold_for_rate(engine: AsyncEngine, settings: Settings, tenant_id: str, channel: str, to: str) -> None:
    """Take a send from the tenant's bucket for the number's country, or fail the activity for
    the send to be tried again when one is due: over the rate a send waits, it is never dropped."""
    code = calling_code(to)
    rate = token_bucket.Rate(channel, settings.message_rate_per_minute, settings.message_rate_burst)
    wait = await token_bucket.take(engine, tenant_id, rate, code)
    if wait:
        raise ApplicationError(
            f"{channel} sends to +{code} are over this tenant's rate; next in {wait:.1f} s",
            type=errors.SEND_RATE_LIMITED,
            next_retry_delay=timedelta(seconds=wait),
        )


class MessageDelivery:
    """What the sms and whatsapp mixins use of DeliveryActivities: the engine, the guarded
    client, settings and secrets."""

    engine: AsyncEngine
    http: httpx.AsyncClient
    settings: Settings
    secrets: SecretsProvider


class SmsDelivery(MessageDelivery):
    """Mixed into DeliveryActivities."""

    async def _send_sms(self, inp: DeliveryInput, opened: OpenDelivery) -> SendOutcome:
        """One message; its outcome. Nothing here writes to the database but the rate bucket."""
        try:
            message = compose(self.settings, inp, opened)
        except TextInvalid as e:
            return opened.outcome(error=str(e), error_type=errors.RECIPIENT_INVALID)
        account = await self._account(inp, opened)
        if isinstance(account, str):
            return opened.outcome(error=account, error_type=errors.MESSAGE_NOT_CONFIGURED)
        await hold_for_rate(self.engine, self.settings, inp.tenant_id, "sms", message.to)
        try:
            await send_sms(self.http, self.settings.twilio_api_url, account, message.to, message.body)
        except SmsError as e:
            kind = errors.SMS_UNAVAILABLE if e.retryable else errors.SMS_REJECTED
            return opened.outcome(status_code=e.status, error=str(e), error_type=kind, retryable=e.retryable)
        return opened.outcome(status_code=201)

    async def _account(self, inp: DeliveryInput, opened: OpenDelivery) -> SmsAccount | str:
        """The target's Twilio account, its secrets read through the tenant's references; or why not."""
        creds: dict[str, Any] = opened.target["credentials"]
        values: dict[str, str] = {}
        for name in ("account_sid", "auth_token"):
            given = creds[name]
            if isinstance(given, dict):
                found = await secret_of(opened.tenant, self.secrets, inp.tenant_id, given["secret"], None)
                if not found:
                    return f"credentials.{name}: the tenant has no secret named {given['secret']!r}"
                given = found
            values[name] = given
        return SmsAccount(
            values["account_sid"], values["auth_token"], creds.get("from"), creds.get("messaging_service_sid")
        )
