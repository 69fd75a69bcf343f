"""WhatsApp delivery: a text message with a signed link to the job's report, sent through the
Graph API client the conversations use (lodestone/whatsapp.py), from the tenant's WhatsApp
channel with the tenant's token (else the platform's), at the tenant's send rate per country."""

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from activities import errors
from activities.conversation import whatsapp_token
from activities.delivery_log import DeliveryInput, OpenDelivery, SendOutcome
from activities.sms_delivery import MessageDelivery, compose, hold_for_rate
from lodestone.db import tenant_session
from lodestone.message_text import TextInvalid
from lodestone.whatsapp import GraphError, WhatsAppClient
from schema.conversations import ChannelRoute


async def sending_number(engine: AsyncEngine, tenant_id: str, asked: str | None) -> str | None:
    """The phone_number_id to send from: the target's, when the tenant has registered it, else
    the tenant's first registered channel."""
    async with tenant_session(engine, tenant_id) as session:
        query = select(ChannelRoute.phone_number_id).where(ChannelRoute.tenant_id == uuid.UUID(tenant_id))
        if asked:
            query = query.where(ChannelRoute.phone_number_id == asked)
        return (await session.exec(query.order_by(col(ChannelRoute.created_at)))).first()


class WhatsAppDelivery(MessageDelivery):
    """Mixed into DeliveryActivities."""

    async def _send_whatsapp(self, inp: DeliveryInput, opened: OpenDelivery) -> SendOutcome:
        try:
            message = compose(self.settings, inp, opened)
        except TextInvalid as e:
            return opened.outcome(error=str(e), error_type=errors.RECIPIENT_INVALID)
        asked = opened.target.get("phone_number_id")
        number = await sending_number(self.engine, inp.tenant_id, asked)
        if number is None:
            why = f"channel {asked} is not registered" if asked else "no WhatsApp channel is registered"
            return opened.outcome(error=f"{why} for this tenant", error_type=errors.MESSAGE_NOT_CONFIGURED)
        token = await whatsapp_token(opened.tenant, self.secrets, self.settings, inp.tenant_id)
        await hold_for_rate(self.engine, self.settings, inp.tenant_id, "whatsapp", message.to)
        client = WhatsAppClient(self.http, self.settings)
        try:
            await client.send_text(token, number, message.to.removeprefix("+"), message.body)
        except GraphError as e:
            kind = errors.GRAPH_UNAVAILABLE if e.retryable else errors.GRAPH_REJECTED
            return opened.outcome(status_code=e.status, error=str(e), error_type=kind, retryable=e.retryable)
        return opened.outcome(status_code=200)
