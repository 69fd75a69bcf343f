"""The WhatsApp webhook and channel routes, against the real API, worker, Postgres and
Temporal, with replies landing at the Graph API stand-in."""

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlmodel import select

from devstack.processes import free_port
from lodestone.db import tenant_session
from schema.tables import Contact, Message
from tests.helpers import in_process_api

pytestmark = pytest.mark.timeout(120)


def digits(n: int = 12) -> str:
    return str(uuid.uuid4().int)[:n]


def sign(secret: str, raw: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


async def post_webhook(
    settings,
    payload: dict[str, Any] | bytes,
    signature: str | None = "sign",
    raw: bytes | None = None,
    http: httpx.AsyncClient | None = None,
) -> httpx.Response:
    """Post `raw` (default: the payload's JSON) signed over the payload unless told otherwise."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"content-type": "application/json"}
    if signature == "sign":
        signature = sign(settings.whatsapp_app_secret, body)
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    if http is not None:
        return await http.post("/webhooks/whatsapp", content=raw or body, headers=headers)
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(f"{settings.api_url}/webhooks/whatsapp", content=raw or body, headers=headers)


def change(phone_number_id: str, **value: Any) -> dict[str, Any]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": phone_number_id},
        **value,
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "waba-1", "changes": [{"field": "messages", "value": value}]}],
    }


def text_payload(
    phone_number_id: str, wa_id: str, body: str = "hello", message_id: str | None = None, name: str = "Ada"
) -> dict[str, Any]:
    return change(
        phone_number_id,
        contacts=[{"profile": {"name": name}, "wa_id": wa_id}],
        messages=[
            {
                "from": wa_id,
                "id": message_id or f"wamid.{uuid.uuid4().hex}",
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": body},
            }
        ],
    )


def message_id(payload: dict[str, Any]) -> str:
    return payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"]


async def stored(engine, tenant_id, **where: Any) -> list[Message]:
    async with tenant_session(engine, tenant_id) as s:
        query = select(Message)
        for key, value in where.items():
            query = query.where(getattr(Message, key) == value)
        return list((await s.exec(query)).all())


async def replies_to(graph_standin, wa_id: str, count: int, timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        calls = [c for c in graph_standin.texts() if c.body.get("to") == wa_id]
        if len(calls) >= count:
            return calls
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} replies to {wa_id} not seen in {timeout}s")


@pytest.fixture(scope="module")
async def phone(tenant_a) -> Any:
    number = digits(15)
    resp = await tenant_a.api.post("/v1/channels/whatsapp", json={"phone_number_id": number})
    assert resp.status_code == 201, resp.text
    yield number
    # Routes are readable without a tenant: leave none behind for other modules.
    await tenant_a.api.delete(f"/v1/channels/whatsapp/{number}")


# --- GET: subscription verification ---------------------------------------------------


async def test_verify_echoes_challenge(settings, stack) -> None:
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": settings.whatsapp_verify_token,
        "hub.challenge": "1158201444",
    }
    resp = httpx.get(f"{settings.api_url}/webhooks/whatsapp", params=params)
    assert resp.status_code == 200
    assert resp.text == "1158201444"
    assert resp.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("mode,token", [("subscribe", "wrong-token"), ("unsubscribe", None), ("", None)])
async def test_verify_refuses_bad_token_or_mode(settings, stack, mode: str, token: str | None) -> None:
    params = {"hub.mode": mode, "hub.verify_token": token or settings.whatsapp_verify_token, "hub.challenge": "42"}
    resp = httpx.get(f"{settings.api_url}/webhooks/whatsapp", params=params)
    assert resp.status_code == 403
    assert resp.headers["content-type"] == "application/problem+json"
    assert "42" not in resp.text


# --- POST: signatures ------------------------------------------------------------------


async def test_signed_text_message_is_stored(settings, engine, tenant_a, phone) -> None:
    wa_id = digits()
    payload = text_payload(phone, wa_id, "hi there", name="Ada Lovelace")
    resp = await post_webhook(settings, payload)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"status": "ok"}
    [row] = await stored(engine, tenant_a.id, message_id=message_id(payload))
    assert (row.direction, row.kind, row.body, row.status) == ("in", "text", "hi there", "received")
    async with tenant_session(engine, tenant_a.id) as s:
        contact = (await s.exec(select(Contact).where(Contact.wa_id == wa_id))).one()
    assert (contact.name, contact.phone_number_id, contact.id) == ("Ada Lovelace", phone, row.contact_id)


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "sha1=abc", "", "garbage"])
async def test_bad_or_missing_signature_stores_nothing(
    settings, engine, tenant_a, phone, signature: str | None
) -> None:
    payload = text_payload(phone, digits())
    resp = await post_webhook(settings, payload, signature=signature)
    assert resp.status_code == 401
    assert resp.headers["content-type"] == "application/problem+json"
    assert await stored(engine, tenant_a.id, message_id=message_id(payload)) == []


async def test_tampered_body_with_original_signature_is_refused(settings, engine, tenant_a, phone) -> None:
    payload = text_payload(phone, digits(), "pay 10")
    original = json.dumps(payload).encode()
    tampered = original.replace(b"pay 10", b"pay 99")
    resp = await post_webhook(settings, original, raw=tampered)
    assert resp.status_code == 401
    assert await stored(engine, tenant_a.id, message_id=message_id(payload)) == []


async def test_signed_malformed_json_is_400(settings, stack) -> None:
    for raw in (b"{not json", b'{"entry": "not a list"}'):
        resp = await post_webhook(settings, raw)
        assert resp.status_code == 400, raw
        assert resp.json()["code"] == "invalid_payload"


# --- POST: storage ---------------------------------------------------------------------


async def test_duplicate_message_is_stored_once(settings, engine, tenant_a, phone) -> None:
    payload = text_payload(phone, digits(), "same message twice")
    for _ in range(2):
        assert (await post_webhook(settings, payload)).status_code == 200
    assert len(await stored(engine, tenant_a.id, message_id=message_id(payload))) == 1


async def test_image_message_is_stored_with_its_caption(settings, engine, tenant_a, phone) -> None:
    wa_id, mid = digits(), f"wamid.{uuid.uuid4().hex}"
    payload = change(
        phone,
        contacts=[{"profile": {"name": "Bo"}, "wa_id": wa_id}],
        messages=[
            {
                "from": wa_id,
                "id": mid,
                "timestamp": "1700000000",
                "type": "image",
                "image": {"id": "media-1", "mime_type": "image/jpeg", "sha256": "x", "caption": "my receipt"},
            }
        ],
    )
    assert (await post_webhook(settings, payload)).status_code == 200
    [row] = await stored(engine, tenant_a.id, message_id=mid)
    assert (row.kind, row.body, int(row.sent_at.timestamp())) == ("image", "my receipt", 1700000000)


async def test_status_updates_move_outbound_message_forward_only(settings, engine, tenant_a, phone) -> None:
    wa_id, mid = digits(), f"wamid.{uuid.uuid4().hex}"
    async with tenant_session(engine, tenant_a.id) as s:
        contact = Contact(tenant_id=tenant_a.id, wa_id=wa_id, phone_number_id=phone)
        s.add(contact)
        await s.flush()
        s.add(
            Message(
                tenant_id=tenant_a.id,
                contact_id=contact.id,
                message_id=mid,
                direction="out",
                status="sent",
                body="our reply",
            )
        )
    for status, expected in [("delivered", "delivered"), ("sent", "delivered"), ("read", "read"), ("deleted", "read")]:
        payload = change(
            phone, statuses=[{"id": mid, "status": status, "timestamp": "1700000000", "recipient_id": wa_id}]
        )
        assert (await post_webhook(settings, payload)).status_code == 200
        [row] = await stored(engine, tenant_a.id, message_id=mid)
        assert row.status == expected, status


async def test_unknown_phone_number_id_is_skipped(settings, engine, tenant_a, tenant_b) -> None:
    wa_id = digits()
    payload = text_payload(digits(15), wa_id)
    assert (await post_webhook(settings, payload)).status_code == 200
    for tenant in (tenant_a, tenant_b):
        assert await stored(engine, tenant.id, message_id=message_id(payload)) == []
        async with tenant_session(engine, tenant.id) as s:
            assert (await s.exec(select(Contact).where(Contact.wa_id == wa_id))).all() == []


async def test_unconfigured_whatsapp_is_503(settings, stack) -> None:
    async with in_process_api(settings, whatsapp_app_secret=None, whatsapp_verify_token=None) as http:
        verify = await http.get("/webhooks/whatsapp", params={"hub.mode": "subscribe", "hub.verify_token": ""})
        post = await http.post("/webhooks/whatsapp", content=b"{}", headers={"X-Hub-Signature-256": "sha256=0"})
    for resp in (verify, post):
        assert resp.status_code == 503
        assert "whatsapp is not configured" in resp.json()["detail"]


async def test_temporal_down_is_503_and_redelivery_signals(settings, engine, tenant_a, phone, graph_standin) -> None:
    wa_id = digits()
    payload = text_payload(phone, wa_id, "are you there?")
    async with in_process_api(settings, temporal_address=f"127.0.0.1:{free_port()}") as http:
        resp = await post_webhook(settings, payload, http=http)
    assert resp.status_code == 503, resp.text  # Meta retries on non-2xx
    assert len(await stored(engine, tenant_a.id, message_id=message_id(payload))) == 1
    # Meta's redelivery finds the row already stored, and still hands it to the workflow.
    assert (await post_webhook(settings, payload)).status_code == 200
    assert len(await stored(engine, tenant_a.id, message_id=message_id(payload))) == 1
    await replies_to(graph_standin, wa_id, 1)


# --- channel routes --------------------------------------------------------------------


async def test_channel_routes(settings, tenant_a, tenant_b) -> None:
    number = digits(15)
    path = f"/v1/channels/whatsapp/{number}"
    try:
        assert (await tenant_a.api.post("/v1/channels/whatsapp", json={"phone_number_id": number})).status_code == 201
        again = await tenant_a.api.post("/v1/channels/whatsapp", json={"phone_number_id": number})
        assert again.status_code == 200 and again.json()["phone_number_id"] == number
        taken = await tenant_b.api.post("/v1/channels/whatsapp", json={"phone_number_id": number})
        assert taken.status_code == 409
        assert str(tenant_a.id) not in taken.text
        assert number in {c["phone_number_id"] for c in (await tenant_a.api.get("/v1/channels/whatsapp")).json()}
        assert number not in {c["phone_number_id"] for c in (await tenant_b.api.get("/v1/channels/whatsapp")).json()}
        viewer = {"Authorization": f"Bearer {tenant_a.token_for(settings, 'viewer')}"}
        assert (await tenant_a.api.get("/v1/channels/whatsapp", headers=viewer)).status_code == 200
        assert (await tenant_a.api.delete(path, headers=viewer)).status_code == 403
        assert (await tenant_b.api.delete(path)).status_code == 404
        assert (await tenant_a.api.delete(path)).status_code == 204
        assert (await tenant_a.api.delete(path)).status_code == 404
    finally:
        await tenant_a.api.delete(path)


# --- batching: one reply per burst -----------------------------------------------------


async def send_spaced(settings, phone: str, wa_id: str, n: int, gap: float) -> list[float]:
    sent = []
    for i in range(n):
        if i:
            await asyncio.sleep(gap)
        assert (await post_webhook(settings, text_payload(phone, wa_id, f"part {i}"))).status_code == 200
        sent.append(time.time())
    return sent


async def test_burst_gets_one_reply_after_debounce(settings, graph_standin, phone) -> None:
    wa_id = digits()
    sent = await send_spaced(settings, phone, wa_id, 3, 0.2)
    # The premise: each message came within the debounce of the one before (a POST itself may
    # take a while on a loaded machine, hence the short sleep between them)
    assert max(b - a for a, b in zip(sent, sent[1:], strict=False)) < settings.reply_batch_debounce, sent
    [reply] = await replies_to(graph_standin, wa_id, 1)
    await asyncio.sleep(settings.reply_batch_debounce + 2)  # nothing more follows
    assert len([c for c in graph_standin.texts() if c.body.get("to") == wa_id]) == 1
    delay = reply.at - sent[-1]
    print(f"burst: reply {delay:.2f}s after the last message (debounce {settings.reply_batch_debounce}s)")  # noqa: T201
    assert abs(delay - settings.reply_batch_debounce) <= 1.0
    assert reply.authorized and reply.path.endswith(f"/{phone}/messages")


async def test_steady_stream_is_answered_by_max_wait(settings, graph_standin, phone) -> None:
    wa_id = digits()
    sent = await send_spaced(settings, phone, wa_id, 8, 0.8)  # 5.6 s or more, past the 4 s max wait
    await replies_to(graph_standin, wa_id, 2)
    await asyncio.sleep(settings.reply_batch_debounce + 2)  # the stream's last batch answered
    replies = [c for c in graph_standin.texts() if c.body.get("to") == wa_id]
    first, second = replies[0], replies[-1]
    # One batch per max wait while the stream lasts (a loaded machine stretches it), then the last
    assert len(replies) <= 2 + int((sent[-1] - sent[0]) // settings.reply_batch_max_wait), (len(replies), sent)
    assert second.at > sent[-1]
    delay = first.at - sent[0]
    print(  # noqa: T201
        f"stream: first reply {delay:.2f}s after the first message "
        f"(max wait {settings.reply_batch_max_wait}s); second {second.at - sent[-1]:.2f}s after the last"
    )
    assert abs(delay - settings.reply_batch_max_wait) <= 1.0
    assert first.at < sent[-1]  # answered while messages were still arriving


async def test_redelivered_answered_message_gets_no_second_reply(
    settings, engine, tenant_a, graph_standin, phone
) -> None:
    wa_id = digits()
    payload = text_payload(phone, wa_id, "is my order on its way?")
    assert (await post_webhook(settings, payload)).status_code == 200
    await replies_to(graph_standin, wa_id, 1)
    await asyncio.sleep(0.5)
    [row] = await stored(engine, tenant_a.id, message_id=message_id(payload))
    assert row.status == "answered"
    assert (await post_webhook(settings, payload)).status_code == 200  # Meta redelivers
    await asyncio.sleep(settings.reply_batch_debounce + 2)
    assert len([c for c in graph_standin.texts() if c.body.get("to") == wa_id]) == 1
