"""Logs carry the request id, and never tokens, secrets or message bodies."""

import hashlib
import hmac
import json
import time
import uuid

import httpx

from tests.helpers import definition, store_unchecked, submit, wait_job


def _signed(settings, body: dict) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    sig = "sha256=" + hmac.new(settings.whatsapp_app_secret.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"X-Hub-Signature-256": sig, "content-type": "application/json"}


def _message(phone: str, text: str) -> dict:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"phone_number_id": phone},
        "contacts": [{"wa_id": "15550009999", "profile": {"name": "Log Tester"}}],
        "messages": [
            {
                "from": "15550009999",
                "id": f"wamid.{uuid.uuid4().hex}",
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": text},
            }
        ],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "x", "changes": [{"field": "messages", "value": value}]}],
    }


async def test_logs_have_request_ids_and_no_secrets(settings, stack, engine, tenant_a):
    marker = f"private-body-{uuid.uuid4().hex}"
    rid = f"hygiene-{uuid.uuid4().hex}"
    async with httpx.AsyncClient(base_url=settings.api_url) as client:
        raw, headers = _signed(settings, _message(f"unrouted-{uuid.uuid4().hex[:6]}", marker))
        resp = await client.post("/webhooks/whatsapp", content=raw, headers={**headers, "X-Request-Id": rid})
        assert resp.status_code == 200 and resp.headers["x-request-id"] == rid
    # A private address: the outbound guard refuses it before connecting, and the job fails.
    # (Stored past the checks POST /v1/workflows makes, which refuse it: a definition stored
    # before OUTBOUND_ALLOW_CIDRS was narrowed meets the guard when it runs.)
    wf = await store_unchecked(engine, tenant_a.id, definition("http://10.0.0.1/refused-hook"))
    job = await wait_job(
        tenant_a.api, (await submit(tenant_a.api, wf["key"], {"company": marker})).json()["job_id"], timeout=60
    )
    assert job["status"] == "failed" and job["error"]["code"] == "WebhookURLRefused"
    time.sleep(0.5)
    logs = {name: (settings.data_path / "logs" / f"{name}.log").read_text() for name in ("api", "worker")}
    token = tenant_a.api.headers["authorization"].removeprefix("Bearer ")
    forbidden = {
        "bearer token": token,
        "token signature": token.rsplit(".", 1)[1],
        "webhook secret": tenant_a.webhook_secret,
        "app secret": settings.whatsapp_app_secret,
        "graph token": settings.whatsapp_access_token,
        "message body": marker,
    }
    for name, text in logs.items():
        for what, value in forbidden.items():
            assert value not in text, f"{what} found in {name}.log"
    lines = [json.loads(line) for line in logs["api"].splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("request_id") == rid]
    assert mine and any("unrouted" in line["msg"] for line in mine)
