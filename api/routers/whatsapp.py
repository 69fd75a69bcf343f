"""The WhatsApp Cloud API webhook: GET verifies the subscription, POST stores inbound
messages and delivery statuses and signal-with-starts each contact's ConversationWorkflow.
No LLM work happens here: the workflow replies later."""

import hashlib
import hmac
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError
from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from api.deps import StateDep
from api.problems import Problem, responses, temporal_unavailable
from api.whatsapp_payload import STATUS_RANK, ChangeValue, WebhookPayload
from lodestone.db import tenant_session
from lodestone.settings import Settings
from schema.tables import ChannelRoute, Contact, Message, utcnow
from workflows.names import CONVERSATION, conversation_id
from workflows.types import TENANT_ID, ConversationInput, NewMessage

router = APIRouter(prefix="/webhooks/whatsapp", tags=["whatsapp"])
log = logging.getLogger("lodestone.api.whatsapp")
MAX_BODY = 1024 * 1024  # Meta's payloads are a few KB
SIGNAL_TIMEOUT = timedelta(seconds=5)


@dataclass
class Inbound:
    tenant_id: str
    contact_id: str
    wa_id: str
    message_id: str


def configured(value: str | None, name: str) -> str:
    if not value:
        raise Problem(503, "whatsapp_not_configured", f"whatsapp is not configured ({name} is unset)")
    return value


@router.get("", response_class=PlainTextResponse, responses=responses(403, 422, 503, descriptions={
    403: "wrong mode or token", 503: "WHATSAPP_VERIFY_TOKEN is unset"}))
async def verify_subscription(state: StateDep, mode: Annotated[str, Query(alias="hub.mode")] = "",
                              token: Annotated[str, Query(alias="hub.verify_token")] = "",
                              challenge: Annotated[str, Query(alias="hub.challenge")] = "") -> PlainTextResponse:
    expected = configured(state.settings.whatsapp_verify_token, "WHATSAPP_VERIFY_TOKEN")
    if mode != "subscribe" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Problem(403, "forbidden", "the verify token or hub.mode is wrong")
    return PlainTextResponse(challenge)


async def read_body(request: Request) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise Problem(413, "payload_too_large", f"the webhook body is larger than {MAX_BODY} bytes")
    return bytes(body)


def check_signature(secret: str, raw: bytes, header: str | None) -> None:
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    if not header or not hmac.compare_digest(expected.encode(), header.strip().lower().encode("latin-1")):
        raise Problem(401, "bad_signature", "X-Hub-Signature-256 is missing or does not match the body")


async def upsert_contacts(session: AsyncSession, tenant_id: uuid.UUID, value: ChangeValue) -> dict[str, str]:
    ids: dict[str, str] = {}
    phone_number_id = value.metadata.phone_number_id if value.metadata else None
    for wa_id, name in value.contact_names().items():
        stmt = insert(Contact).values(id=uuid.uuid4(), tenant_id=tenant_id, wa_id=wa_id, name=name,
                                      phone_number_id=phone_number_id, created_at=utcnow())
        stmt = stmt.on_conflict_do_update(index_elements=["tenant_id", "wa_id"], set_={
            "phone_number_id": stmt.excluded.phone_number_id,
            "name": func.coalesce(stmt.excluded.name, col(Contact.name))})
        ids[wa_id] = str((await session.execute(stmt.returning(col(Contact.id)))).scalar_one())
    return ids


async def store_change(session: AsyncSession, tenant_id: uuid.UUID, value: ChangeValue) -> list[Inbound]:
    contacts = await upsert_contacts(session, tenant_id, value)
    texts = []
    for m in value.messages:
        if not m.from_:
            continue
        await session.execute(insert(Message).values(
            id=uuid.uuid4(), tenant_id=tenant_id, contact_id=uuid.UUID(contacts[m.from_]), message_id=m.id,
            direction="in", kind=m.type, status="received", body=m.body, sent_at=m.sent_at,
        ).on_conflict_do_nothing(index_elements=["tenant_id", "message_id"]))
        if m.type == "text":
            status = (await session.exec(select(Message.status).where(Message.message_id == m.id))).one()
            if status != "answered":  # a redelivery of an answered message starts no new batch
                texts.append(Inbound(str(tenant_id), contacts[m.from_], m.from_, m.id))
    for s in value.statuses:
        if s.status not in STATUS_RANK:
            continue
        # Meta may deliver statuses out of order: never step back (read -> delivered).
        lower = [k for k, rank in STATUS_RANK.items() if rank < STATUS_RANK[s.status]] + ["pending"]
        await session.execute(update(Message).where(
            col(Message.message_id) == s.id, col(Message.direction) == "out", col(Message.status).in_(lower),
        ).values(status=s.status))
    return texts


async def find_tenants(engine: AsyncEngine, phone_number_ids: set[str]) -> dict[str, uuid.UUID]:
    # No tenant is set: channel_routes is readable by all, since the tenant is not known yet.
    async with AsyncSession(engine) as session:
        rows = await session.exec(select(ChannelRoute.phone_number_id, ChannelRoute.tenant_id).where(
            col(ChannelRoute.phone_number_id).in_(phone_number_ids)))
        return dict(rows.all())


async def signal(state: StateDep, msg: Inbound) -> None:
    settings: Settings = state.settings
    await state.temporal.start_workflow(
        CONVERSATION,
        ConversationInput(msg.tenant_id, msg.contact_id, debounce_seconds=settings.reply_batch_debounce,
                          max_wait_seconds=settings.reply_batch_max_wait,
                          typing_indicator=settings.whatsapp_typing_indicator),
        id=conversation_id(msg.tenant_id, msg.wa_id), task_queue=settings.temporal_task_queue,
        start_signal="new_message", start_signal_args=[NewMessage(msg.message_id)], rpc_timeout=SIGNAL_TIMEOUT,
        search_attributes=TypedSearchAttributes([SearchAttributePair(TENANT_ID, msg.tenant_id)]))


@router.post("", responses=responses(400, 401, 413, 422, 503, descriptions={
    400: "not a WhatsApp webhook payload", 401: "bad or missing signature",
    503: "WHATSAPP_APP_SECRET is unset, or Temporal did not answer"}))
async def receive(request: Request, state: StateDep,
                  signature: Annotated[str | None, Header(alias="X-Hub-Signature-256")] = None) -> dict[str, str]:
    secret = configured(state.settings.whatsapp_app_secret, "WHATSAPP_APP_SECRET")
    raw = await read_body(request)
    check_signature(secret, raw, signature)
    try:
        payload = WebhookPayload.model_validate_json(raw)
    except ValidationError as e:
        raise Problem(400, "invalid_payload", "the body is not a WhatsApp webhook payload") from e
    values = payload.routed_values()
    routes = await find_tenants(state.engine, {v.metadata.phone_number_id for v in values if v.metadata})
    texts: list[Inbound] = []
    for value in values:
        assert value.metadata is not None
        tenant_id = routes.get(value.metadata.phone_number_id)
        if tenant_id is None:
            log.warning("webhook for an unrouted phone_number_id skipped")  # the id is input: not logged
            continue
        async with tenant_session(state.engine, tenant_id) as session:
            texts += await store_change(session, tenant_id, value)
    # Signal every unanswered text message, stored now or by an earlier delivery: a redelivery
    # after a failed signal must still reach the workflow, which ignores ids it already holds.
    try:
        for msg in texts:
            await signal(state, msg)
    except Exception as e:
        log.warning("could not signal the conversation: %s", type(e).__name__, extra={"tenant_id": msg.tenant_id})
        raise temporal_unavailable("could not hand the message to its conversation") from e
    return {"status": "ok"}
