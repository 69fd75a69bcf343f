"""The conversation half of the sample: three WhatsApp messages answered in one batch, then
a summary PDF triggered through the contact's schedule, all against the Graph API stand-in."""

import asyncio
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlmodel import col, select

from devstack.graph_standin import GraphAPIStandIn
from lodestone.db import make_engine, tenant_session
from lodestone.settings import Settings
from schema.tables import Contact, Summary
from services.schedules import summary_schedule_id

DEMO_PHONE = "100000000000001"
DEMO_WA_ID = "15550001111"


@dataclass
class WhatsAppDev:
    """The dev stack's WhatsApp settings: a Graph API stand-in and a local app secret."""

    app_secret: str
    verify_token: str
    access_token: str

    @classmethod
    def load(cls, data_dir: Path) -> "WhatsAppDev":
        path = data_dir / "keys" / "whatsapp-dev.json"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                json.dumps({k: secrets.token_urlsafe(24) for k in ("app_secret", "verify_token", "access_token")})
            )
            path.chmod(0o600)
        return cls(**json.loads(path.read_text()))

    def env(self, graph: GraphAPIStandIn) -> dict[str, str]:
        return {
            "WHATSAPP_APP_SECRET": self.app_secret,
            "WHATSAPP_VERIFY_TOKEN": self.verify_token,
            "WHATSAPP_ACCESS_TOKEN": self.access_token,
            "WHATSAPP_GRAPH_URL": graph.base_url,
        }


@dataclass
class ConversationResult:
    reply_delay: float | None
    summary_pdf: str | None

    @property
    def ok(self) -> bool:
        return self.reply_delay is not None and self.summary_pdf is not None


def _payload(text: str) -> bytes:
    message = {
        "from": DEMO_WA_ID,
        "id": f"wamid.demo{uuid.uuid4().hex}",
        "timestamp": str(int(time.time())),
        "type": "text",
        "text": {"body": text},
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"phone_number_id": DEMO_PHONE},
        "contacts": [{"profile": {"name": "Demo Customer"}, "wa_id": DEMO_WA_ID}],
        "messages": [message],
    }
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "demo", "changes": [{"field": "messages", "value": value}]}],
        }
    ).encode()


async def _wait(predicate, timeout: float, alive: Callable[[], None]) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive()
        if await predicate():
            return True
        await asyncio.sleep(0.25)
    return False


async def run_conversation(
    settings: Settings,
    api: httpx.AsyncClient,
    dev: WhatsAppDev,
    graph: GraphAPIStandIn,
    tenant_id: uuid.UUID,
    say,
    alive: Callable[[], None],
) -> ConversationResult:  # type: ignore[no-untyped-def]
    (await api.post("/v1/channels/whatsapp", json={"phone_number_id": DEMO_PHONE})).raise_for_status()
    before = len(graph.texts())
    sent_at = 0.0
    for text in ("Hi! Is my order 1042 shipped?", "It was due Monday.", "Could it come Friday instead?"):
        raw = _payload(text)
        sig = "sha256=" + hmac.new(dev.app_secret.encode(), raw, hashlib.sha256).hexdigest()
        resp = await api.post(
            "/webhooks/whatsapp", content=raw, headers={"X-Hub-Signature-256": sig, "content-type": "application/json"}
        )
        resp.raise_for_status()
        sent_at = time.time()
        await asyncio.sleep(0.4)
    say(f"3 WhatsApp messages in; waiting for one batched reply (debounce {settings.reply_batch_debounce:g}s)")

    async def replied() -> bool:
        return len(graph.texts()) > before

    if not await _wait(replied, settings.reply_batch_max_wait + 30, alive):
        return ConversationResult(None, None)
    delay = graph.texts()[before].at - sent_at
    engine = make_engine(settings.app_database_url, 1)
    try:
        async with tenant_session(engine, tenant_id) as s:
            contact = (await s.exec(select(Contact).where(Contact.wa_id == DEMO_WA_ID))).one()
        created = await api.post("/v1/schedules", json={"contact_id": str(contact.id)})
        schedule_id = summary_schedule_id(tenant_id, contact.id)
        if created.status_code not in (201, 409):
            created.raise_for_status()
        started = time.time()
        (await api.post(f"/v1/schedules/{schedule_id}/trigger")).raise_for_status()
        say("summary schedule triggered; waiting for the PDF")

        async def summarised() -> bool:
            async with tenant_session(engine, tenant_id) as s:
                row = (
                    await s.exec(
                        select(Summary).where(Summary.contact_id == contact.id).order_by(col(Summary.created_at).desc())
                    )
                ).first()
            return row is not None and row.created_at.timestamp() >= started - 1

        if not await _wait(summarised, 120, alive):
            return ConversationResult(delay, None)
        async with tenant_session(engine, tenant_id) as s:
            row = (
                await s.exec(
                    select(Summary).where(Summary.contact_id == contact.id).order_by(col(Summary.created_at).desc())
                )
            ).first()
    finally:
        await engine.dispose()
    assert row is not None
    path = (
        f"s3://{settings.s3_bucket}/{row.artifact_key}"
        if settings.s3_endpoint
        else str(settings.data_path / "objects" / row.artifact_key)
    )
    return ConversationResult(delay, path)
