"""Inbound WhatsApp messages: stored per tenant (routed by the receiving phone number id),
then signalled to each contact's ConversationWorkflow, started by name if it is not running.
No LLM work happens here: the workflow replies later."""

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from lodestone.db import tenant_session
from lodestone.settings import Settings
from lodestone.whatsapp_payload import STATUS_RANK, ChangeValue
from schema.tables import ChannelRoute, Contact, Message, utcnow
from workflows.names import CONVERSATION, conversation_id
from workflows.types import TENANT_ID, ConversationInput, NewMessage

log = logging.getLogger("lodestone.api.whatsapp")
SIGNAL_TIMEOUT = timedelta(seconds=5)


@dataclass
class Inbound:
    tenant_id: str
    contact_id: str
    wa_id: str
    message_id: str


async def upsert_contacts(session: AsyncSession, tenant_id: uuid.UUID, value: ChangeValue) -> dict[str, str]:
    ids: dict[str, str] = {}
    phone_number_id = value.metadata.phone_number_id if value.metadata else None
    for wa_id, name in value.contact_names().items():
        stmt = insert(Contact).values(
            id=uuid.uuid4(),
            tenant_id=tenant_id,
            wa_id=wa_id,
            name=name,
            phone_number_id=phone_number_id,
            created_at=utcnow(),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "wa_id"],
            set_={
                "phone_number_id": stmt.excluded.phone_number_id,
                "name": func.coalesce(stmt.excluded.name, col(Contact.name)),
            },
        )
        ids[wa_id] = str((await session.execute(stmt.returning(col(Contact.id)))).scalar_one())
    return ids


async def store_change(session: AsyncSession, tenant_id: uuid.UUID, value: ChangeValue) -> list[Inbound]:
    contacts = await upsert_contacts(session, tenant_id, value)
    texts = []
    for m in value.messages:
        if not m.from_:
            continue
        await session.execute(
            insert(Message)
            .values(
                id=uuid.uuid4(),
                tenant_id=tenant_id,
                contact_id=uuid.UUID(contacts[m.from_]),
                message_id=m.id,
                direction="in",
                kind=m.type,
                status="received",
                body=m.body,
                sent_at=m.sent_at,
            )
            .on_conflict_do_nothing(index_elements=["tenant_id", "message_id"])
        )
        if m.type == "text":
            status = (await session.exec(select(Message.status).where(Message.message_id == m.id))).one()
            if status != "answered":  # a redelivery of an answered message starts no new batch
                texts.append(Inbound(str(tenant_id), contacts[m.from_], m.from_, m.id))
    for s in value.statuses:
        if s.status not in STATUS_RANK:
            continue
        # Meta may deliver statuses out of order: never step back (read -> delivered).
        lower = [k for k, rank in STATUS_RANK.items() if rank < STATUS_RANK[s.status]] + ["pending"]
        await session.execute(
            update(Message)
            .where(
                col(Message.message_id) == s.id,
                col(Message.direction) == "out",
                col(Message.status).in_(lower),
            )
            .values(status=s.status)
        )
    return texts


async def find_tenants(engine: AsyncEngine, phone_number_ids: set[str]) -> dict[str, uuid.UUID]:
    # No tenant is set: channel_routes is readable by all, since the tenant is not known yet.
    async with AsyncSession(engine) as session:
        rows = await session.exec(
            select(ChannelRoute.phone_number_id, ChannelRoute.tenant_id).where(
                col(ChannelRoute.phone_number_id).in_(phone_number_ids)
            )
        )
        return dict(rows.all())


async def signal(temporal: Client, settings: Settings, msg: Inbound) -> None:
    """Signal-with-start the contact's ConversationWorkflow with the stored message's id."""
    await temporal.start_workflow(
        CONVERSATION,
        ConversationInput(
            msg.tenant_id,
            msg.contact_id,
            debounce_seconds=settings.reply_batch_debounce,
            max_wait_seconds=settings.reply_batch_max_wait,
            typing_indicator=settings.whatsapp_typing_indicator,
        ),
        id=conversation_id(msg.tenant_id, msg.wa_id),
        task_queue=settings.temporal_task_queue,
        start_signal="new_message",
        start_signal_args=[NewMessage(msg.message_id)],
        rpc_timeout=SIGNAL_TIMEOUT,
        search_attributes=TypedSearchAttributes([SearchAttributePair(TENANT_ID, msg.tenant_id)]),
    )


async def store_inbound(engine: AsyncEngine, values: list[ChangeValue]) -> list[Inbound]:
    """Store each routed change in its tenant; the text messages still unanswered, stored now
    or by an earlier delivery (a redelivery after a failed signal must still reach the workflow,
    which ignores ids it already holds)."""
    routes = await find_tenants(engine, {v.metadata.phone_number_id for v in values if v.metadata})
    texts: list[Inbound] = []
    for value in values:
        assert value.metadata is not None
        tenant_id = routes.get(value.metadata.phone_number_id)
        if tenant_id is None:
            log.warning("webhook for an unrouted phone_number_id skipped")  # the id is input: not logged
            continue
        async with tenant_session(engine, tenant_id) as session:
            texts += await store_change(session, tenant_id, value)
    return texts
