"""15-day summary I/O: the window's transcript, the LLM stages, the PDF, the WhatsApp
document and the summaries row. Texts travel as object keys, never in payloads."""

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio import activity

from activities import errors
from activities.common import fail, heartbeating, llm_transient, secret_of
from activities.conversation import graph_failure, load_contact, whatsapp_token
from lodestone.db import tenant_session
from lodestone.llm import LLMClient, LLMError, LLMTransient
from lodestone.pdf import PdfRenderFailed, render_pdf
from lodestone.secrets import SecretsProvider
from lodestone.settings import Settings
from lodestone.storage import ObjectNotFound, ObjectStore, check_key
from lodestone.templating import render
from lodestone.whatsapp import GraphError, WhatsAppClient
from schema.tables import Message, Summary, Tenant, utcnow


@dataclass
class SummaryWindow:
    tenant_id: str
    contact_id: str
    window_start: str
    window_end: str


@dataclass
class SummaryStageInput:
    tenant_id: str
    contact_id: str
    window_end: str
    stage: str  # extract, themes, write
    source_key: str


@dataclass
class SummaryStageResult:
    key: str
    model: str
    tokens_in: int
    tokens_out: int
    cost_usd: float


@dataclass
class TranscriptResult:
    key: str
    message_count: int


@dataclass
class SummaryPdfInput:
    tenant_id: str
    contact_id: str
    window_start: str
    window_end: str
    transcript_key: str
    summary_key: str
    themes_key: str


@dataclass
class SendDocumentInput:
    tenant_id: str
    contact_id: str
    pdf_key: str
    window_end: str


@dataclass
class SendDocumentResult:
    media_id: str
    wa_message_id: str


@dataclass
class RecordSummaryInput:
    tenant_id: str
    contact_id: str
    window_start: str
    window_end: str
    message_count: int
    pdf_key: str
    media_id: str
    wa_message_id: str
    usage: list[SummaryStageResult] = field(default_factory=list)


TEMPLATE = (Path(__file__).parent.parent / "lodestone" / "templates" / "summary.html.j2").read_text()


def summary_html(
    contact: str, messages: list[dict[str, str]], window_start: str, window_end: str, summary: str, themes: str
) -> bytes:
    """The summary PDF's HTML: `messages` are the transcript's lines ({"when", "who", "text"})."""
    context = {
        "contact": contact,
        "messages": messages,
        "message_count": len(messages),
        "window_start": window_start[:10],
        "window_end": window_end[:10],
        "summary": summary,
        "themes": themes,
    }
    return render(TEMPLATE, context, html=True).encode()


PROMPT_CHARS = 48_000  # the most transcript a stage prompt carries
STAGE_PROMPTS = {
    "extract": "List the facts, requests and decisions in this WhatsApp conversation, one per line:\n\n{text}",
    "themes": "Group these points into three to six themes, one short paragraph each:\n\n{text}",
    "write": "Write a warm, clear summary of the conversation for the customer from these themes:\n\n{text}",
}


def summary_key(tenant_id: str, contact_id: str, window_end: str, name: str) -> str:
    stamp = datetime.fromisoformat(window_end).strftime("%Y%m%dT%H%M%SZ")
    return check_key(f"{tenant_id}/summaries/{contact_id}/{stamp}/{name}")


class SummaryActivities:
    def __init__(
        self,
        engine: AsyncEngine,
        store: ObjectStore,
        llm: LLMClient,
        whatsapp: WhatsAppClient,
        settings: Settings,
        secrets: SecretsProvider,
    ) -> None:
        self.engine, self.store, self.llm, self.whatsapp = engine, store, llm, whatsapp
        self.settings, self.secrets = settings, secrets

    @activity.defn
    async def load_window(self, w: SummaryWindow) -> TranscriptResult:
        start, end = datetime.fromisoformat(w.window_start), datetime.fromisoformat(w.window_end)
        async with tenant_session(self.engine, w.tenant_id) as s:
            contact = await load_contact(s, w.contact_id)
            rows = (
                await s.exec(
                    select(Message)
                    .where(
                        Message.contact_id == contact.id,
                        col(Message.sent_at) >= start,
                        col(Message.sent_at) < end,
                    )
                    .order_by(col(Message.sent_at))
                )
            ).all()
        lines = [
            {
                "when": m.sent_at.strftime("%Y-%m-%d %H:%M"),
                "who": "customer" if m.direction == "in" else "us",
                "text": m.body if m.body is not None else ("[removed]" if m.purged_at else f"[{m.kind}]"),
            }
            for m in rows
        ]
        payload = {"contact": contact.name or contact.wa_id, "messages": lines}
        key = summary_key(w.tenant_id, w.contact_id, w.window_end, "transcript.json")
        await self.store.put_bytes(key, json.dumps(payload).encode(), "application/json")
        return TranscriptResult(key, len(lines))

    async def _text(self, key: str) -> str:
        data = await self.store.get_bytes(key)
        if key.endswith(".json"):
            msgs = json.loads(data)["messages"]
            return "\n".join(f"[{m['when']}] {m['who']}: {m['text']}" for m in msgs) or "(no messages)"
        return data.decode()

    @activity.defn
    async def run_stage(self, inp: SummaryStageInput) -> SummaryStageResult:
        text = await self._text(inp.source_key)
        prompt = STAGE_PROMPTS[inp.stage].format(text=text[-PROMPT_CHARS:])
        async with tenant_session(self.engine, inp.tenant_id) as s:
            tenant = await s.get(Tenant, uuid.UUID(inp.tenant_id))
        llm_key = await secret_of(tenant, self.secrets, inp.tenant_id, "llm_api_key", None)
        try:
            async with heartbeating():
                completion = await self.llm.complete(self.settings.llm_model, prompt, llm_key)
        except LLMTransient as e:
            raise llm_transient(e) from e
        except LLMError as e:
            raise fail(errors.code_of(e), str(e)) from e
        key = summary_key(inp.tenant_id, inp.contact_id, inp.window_end, f"{inp.stage}.txt")
        await self.store.put_bytes(key, completion.text.encode(), "text/plain; charset=utf-8")
        return SummaryStageResult(
            key, completion.model, completion.tokens_in, completion.tokens_out, completion.cost_usd
        )

    @activity.defn
    async def render_summary_pdf(self, inp: SummaryPdfInput) -> str:
        transcript = json.loads(await self.store.get_bytes(inp.transcript_key))
        html = summary_html(
            transcript["contact"],
            transcript["messages"],
            inp.window_start,
            inp.window_end,
            await self._text(inp.summary_key),
            await self._text(inp.themes_key),
        )
        try:
            async with heartbeating():
                pdf = await render_pdf(
                    html, timeout=self.settings.pdf_timeout_seconds, memory_mb=self.settings.pdf_memory_mb
                )
        except PdfRenderFailed as e:
            raise fail(errors.PDF_RENDER_FAILED, str(e)) from e
        key = summary_key(inp.tenant_id, inp.contact_id, inp.window_end, "summary.pdf")
        await self.store.put_bytes(key, pdf, "application/pdf")
        return key

    @activity.defn
    async def send_document(self, inp: SendDocumentInput) -> SendDocumentResult:
        client_key = f"summary:{inp.contact_id}:{inp.window_end}"
        async with tenant_session(self.engine, inp.tenant_id) as s:
            contact = await load_contact(s, inp.contact_id)
            tenant = await s.get(Tenant, uuid.UUID(inp.tenant_id))
            done = (await s.exec(select(Message).where(Message.client_key == client_key))).first()
        if done is not None and done.status == "sent":  # an earlier attempt sent it: never twice
            return SendDocumentResult(done.body or "", done.message_id or "")
        token = await whatsapp_token(tenant, self.secrets, self.settings, inp.tenant_id)
        try:
            pdf = await self.store.get_bytes(inp.pdf_key)
        except ObjectNotFound as e:
            raise fail(errors.SUMMARY_MISSING, f"{inp.pdf_key} is gone") from e
        phone = contact.phone_number_id or ""
        try:
            media_id = await self.whatsapp.upload_media(token, phone, pdf, "summary.pdf", "application/pdf")
            await self._record(inp, contact.id, client_key, "pending", media_id, None)
            wa_id = await self.whatsapp.send_document(
                token, phone, contact.wa_id, media_id, "summary.pdf", f"Your summary to {inp.window_end[:10]}"
            )
        except GraphError as e:
            raise graph_failure(e) from e
        await self._record(inp, contact.id, client_key, "sent", media_id, wa_id)
        return SendDocumentResult(media_id, wa_id)

    async def _record(
        self,
        inp: SendDocumentInput,
        contact_id: uuid.UUID,
        client_key: str,
        status: str,
        media_id: str,
        wa_id: str | None,
    ) -> None:
        stmt = insert(Message).values(
            id=uuid.uuid4(),
            tenant_id=uuid.UUID(inp.tenant_id),
            contact_id=contact_id,
            message_id=wa_id,
            client_key=client_key,
            direction="out",
            kind="document",
            status=status,
            body=media_id,
            sent_at=utcnow(),
        )
        async with tenant_session(self.engine, inp.tenant_id) as s:
            await s.execute(
                stmt.on_conflict_do_update(
                    index_elements=["tenant_id", "client_key"], set_={"status": status, "message_id": wa_id}
                )
            )

    @activity.defn
    async def record_summary(self, inp: RecordSummaryInput) -> None:
        usage = inp.usage
        values = dict(
            tenant_id=uuid.UUID(inp.tenant_id),
            contact_id=uuid.UUID(inp.contact_id),
            window_start=datetime.fromisoformat(inp.window_start),
            window_end=datetime.fromisoformat(inp.window_end),
            message_count=inp.message_count,
            artifact_key=inp.pdf_key,
            media_id=inp.media_id,
            wa_message_id=inp.wa_message_id,
            model=usage[-1].model if usage else None,
            tokens_in=sum(u.tokens_in for u in usage),
            tokens_out=sum(u.tokens_out for u in usage),
            cost_usd=round(sum(u.cost_usd for u in usage), 8),
        )
        stmt = insert(Summary).values(id=uuid.uuid4(), created_at=utcnow(), **values)
        async with tenant_session(self.engine, inp.tenant_id) as s:
            await s.execute(stmt.on_conflict_do_update(index_elements=["contact_id", "window_end"], set_=values))
