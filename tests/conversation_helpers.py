"""Seeding conversations for tests: a routed phone number, a contact, its messages."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from lodestone.db import tenant_session
from schema.tables import ChannelRoute, Contact, Message


async def seed_contact(
    engine: AsyncEngine,
    tenant_id: uuid.UUID,
    messages: int = 0,
    days: float = 30,
    name: str = "Dana Tester",
    end: datetime | None = None,
) -> Contact:
    """A contact on a fresh phone number with `messages` inbound texts spread over `days`."""
    phone = f"pn{uuid.uuid4().int % 10**12}"
    contact = Contact(tenant_id=tenant_id, wa_id=str(uuid.uuid4().int % 10**11), phone_number_id=phone, name=name)
    end = end or datetime.now(UTC)
    async with tenant_session(engine, tenant_id) as s:
        s.add(ChannelRoute(phone_number_id=phone, tenant_id=tenant_id))
        s.add(contact)
        await s.flush()
        for i in range(messages):
            at = end - timedelta(days=days) + timedelta(days=days) * (i + 0.5) / messages
            s.add(
                Message(
                    tenant_id=tenant_id,
                    contact_id=contact.id,
                    message_id=f"wamid.seed{uuid.uuid4().hex}",
                    direction="in" if i % 3 else "out",
                    status="received",
                    body=f"Message {i}: can we move the delivery of order {1000 + i} to Friday?",
                    sent_at=at,
                )
            )
    return contact
