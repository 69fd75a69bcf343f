"""Conversation I/O: one LLM reply per batch, sent through the Graph API exactly once per
batch key, and the retention purge of old message bodies."""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import errors
from activities.common import fail, llm_transient, secret_of
from lodestone.db import tenant_session
from lodestone.llm import LLMClient, LLMError, LLMTransient
from lodestone.secrets import SecretsProvider
from lodestone.settings import Settings
from lodestone.whatsapp import GraphError, WhatsAppClient
from schema.tables import Contact, Message, Tenant, utcnow


@dataclass
class ReplyInput:
    tenant_id: str
    contact_id: str
    message_ids: list[str]
    batch_key: str
    typing_indicator: bool = True


@dataclass
class ReplyResult:
    wa_message_id: str
    sent_now: bool  # False when an earlier attempt had already sent it


@dataclass
class PurgeInput:
    retention_days: int


@dataclass
class PurgeResult:
    tenants: int
    purged: int


HISTORY = 20  # earlier messages the reply prompt sees


def graph_failure(e: GraphError) -> ApplicationError:
    if e.retryable:
        return ApplicationError(str(e), type=errors.GRAPH_UNAVAILABLE)
    return fail(errors.GRAPH_REJECTED, str(e))


async def load_contact(session: AsyncSession, contact_id: str) -> Contact:
    contact = await session.get(Contact, uuid.UUID(contact_id))
    if contact is None or not contact.phone_number_id:
        raise fail(errors.CONTACT_NOT_FOUND, f"contact {contact_id} does not exist or has no WhatsApp number")
    return contact


async def whatsapp_token(
    tenant: Tenant | None, secrets: SecretsProvider, settings: Settings, tenant_id: str
) -> str | None:
    """The tenant's own WhatsApp token (by reference), else the platform's."""
    return await secret_of(tenant, secrets, tenant_id, "whatsapp_token", settings.whatsapp_access_token)


class ConversationActivities:
    def __init__(
        self,
        engine: AsyncEngine,
        llm: LLMClient,
        whatsapp: WhatsAppClient,
        settings: Settings,
        secrets: SecretsProvider,
    ) -> None:
        self.engine, self.llm, self.whatsapp, self.settings, self.secrets = engine, llm, whatsapp, settings, secrets

    @activity.defn
    async def reply_to_batch(self, inp: ReplyInput) -> ReplyResult:
        async with tenant_session(self.engine, inp.tenant_id) as s:
            contact = await load_contact(s, inp.contact_id)
            tenant = await s.get(Tenant, uuid.UUID(inp.tenant_id))
            done = (await s.exec(select(Message).where(Message.client_key == inp.batch_key))).first()
            history = list(
                (
                    await s.exec(
                        select(Message)
                        .where(Message.contact_id == contact.id)
                        .order_by(col(Message.sent_at).desc())
                        .limit(HISTORY)
                    )
                ).all()
            )
        if done is not None and done.status == "sent":  # sent before: never twice, secrets or not
            await self._mark_answered(inp)
            return ReplyResult(done.message_id or "", sent_now=False)
        # Resolved outside the transaction: no connection held while the secrets backend answers.
        token = await whatsapp_token(tenant, self.secrets, self.settings, inp.tenant_id)
        llm_key = await secret_of(tenant, self.secrets, inp.tenant_id, "llm_api_key", None)
        batch = [m for m in history if m.message_id in inp.message_ids]
        if inp.typing_indicator and batch:
            try:
                await self.whatsapp.typing(token, contact.phone_number_id or "", batch[-1].message_id or "")
            except GraphError as e:
                # The type only: the message quotes the Graph API's answer.
                activity.logger.info("typing indicator failed (%s); replying anyway", type(e).__name__)
        prompt = self._prompt(contact, reversed(history), inp.message_ids)
        try:
            completion = await self.llm.complete(self.settings.llm_model, prompt, llm_key)
        except LLMTransient as e:
            raise llm_transient(e) from e
        except LLMError as e:
            raise fail(errors.code_of(e), str(e)) from e
        await self._record(inp, contact, completion.text, status="pending")
        try:
            wa_id = await self.whatsapp.send_text(token, contact.phone_number_id or "", contact.wa_id, completion.text)
        except GraphError as e:
            raise graph_failure(e) from e
        await self._record(inp, contact, completion.text, status="sent", message_id=wa_id)
        await self._mark_answered(inp)
        return ReplyResult(wa_id, sent_now=True)

    async def _mark_answered(self, inp: ReplyInput) -> None:
        async with tenant_session(self.engine, inp.tenant_id) as s:
            await s.execute(
                update(Message)
                .where(
                    col(Message.message_id).in_(inp.message_ids),
                    col(Message.direction) == "in",
                )
                .values(status="answered")
            )

    @staticmethod
    def _prompt(contact: Contact, history: Iterable[Message], batch_ids: list[str]) -> str:
        lines = [
            f"You are replying on WhatsApp to {contact.name or 'a customer'}. Reply once, briefly, to "
            "the new messages marked NEW, using the earlier ones as context."
        ]
        for m in history:
            who = "customer" if m.direction == "in" else "us"
            mark = "NEW " if m.message_id in batch_ids else ""
            lines.append(f"{mark}{who}: {m.body or f'[{m.kind}]'}")
        return "\n".join(lines)

    async def _record(
        self, inp: ReplyInput, contact: Contact, body: str, status: str, message_id: str | None = None
    ) -> None:
        stmt = insert(Message).values(
            id=uuid.uuid4(),
            tenant_id=uuid.UUID(inp.tenant_id),
            contact_id=contact.id,
            message_id=message_id,
            client_key=inp.batch_key,
            direction="out",
            kind="text",
            status=status,
            body=body,
            sent_at=utcnow(),
        )
        async with tenant_session(self.engine, inp.tenant_id) as s:
            await s.execute(
                stmt.on_conflict_do_update(
                    index_elements=["tenant_id", "client_key"],
                    set_={"status": status, "message_id": message_id, "body": body},
                )
            )

    @activity.defn
    async def purge_message_bodies(self, inp: PurgeInput) -> PurgeResult:
        cutoff = datetime.now(UTC) - timedelta(days=inp.retention_days)
        async with tenant_session(self.engine, uuid.UUID(int=0)) as s:
            # Every tenant still holding a body from before the cutoff, whether or not it still
            # has a channel (migration 0008); the updates below run in each tenant's own session.
            due = await s.execute(text("SELECT t FROM retention_due_tenants(:cutoff) AS t"), {"cutoff": cutoff})
            tenants = set(due.scalars().all())
        purged = 0
        for tenant in sorted(tenants):
            async with tenant_session(self.engine, tenant) as s:
                result = await s.execute(
                    update(Message)
                    .where(
                        col(Message.sent_at) < cutoff,
                        col(Message.body).is_not(None),
                    )
                    .values(body=None, purged_at=utcnow())
                )
                purged += cast(CursorResult[Any], result).rowcount or 0
            activity.heartbeat(str(tenant))
        activity.logger.info("purged %d message bodies older than %s", purged, cutoff.date())
        return PurgeResult(len(tenants), purged)
