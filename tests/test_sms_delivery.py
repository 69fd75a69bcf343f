"""SMS and WhatsApp delivery targets: the real workflow and activities on an in-process
worker whose TWILIO_API_URL is a local stand-in for Twilio's API (tests/standins/twilio_server.py)
and whose WHATSAPP_GRAPH_URL is the Graph API stand-in (devstack/graph_standin.py). Each test
sends to its own country calling code, so the send rate buckets of one do not hold another."""

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from lodestone.settings import Settings
from services.tenants import set_secret_refs
from tests.conftest import TenantCtx, _tenant
from tests.helpers import create_workflow, definition, delivery_attempts, submit, wait_job, worker_api
from tests.standins.twilio_server import INVALID_NUMBER, TwilioStandIn

ACCOUNT = "AC" + "1f" * 16
TOKEN = "twilio-auth-token-of-the-tenant"
RATE_PER_MINUTE = 20  # one send per 3 s per country once the burst of 1 is spent
PHONE_ID = "1098765432"


@pytest.fixture(scope="module")
def twilio() -> Iterator[TwilioStandIn]:
    with TwilioStandIn(ACCOUNT, TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def sms_settings(settings: Settings, twilio: TwilioStandIn) -> Settings:
    return settings.model_copy(
        update={
            "twilio_api_url": twilio.base_url,
            "message_rate_per_minute": RATE_PER_MINUTE,
            "message_rate_burst": 1,
            "secrets_file_root": settings.data_path / "secrets",
            "temporal_task_queue": f"sms-{uuid.uuid4()}",
        }
    )


@pytest.fixture(scope="module")
async def tenant(settings: Settings, engine) -> AsyncIterator[TenantCtx]:  # type: ignore[no-untyped-def]
    ctx = await _tenant(settings, engine, "SMS deliveries")
    path = settings.data_path / "secrets" / "tenants" / str(ctx.id) / "twilio_token"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TOKEN + "\n")
    await set_secret_refs(engine, ctx.id, {"twilio_token": f"file:{path}"})
    yield ctx
    await ctx.api.aclose()


@pytest.fixture(scope="module")
async def api(sms_settings, temporal, engine, tenant) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    async with worker_api(sms_settings, temporal, engine, tenant) as client:
        yield client


def sms(to: str, text: str | None = None) -> dict[str, Any]:
    target: dict[str, Any] = {
        "type": "sms",
        "to": to,
        "credentials": {"account_sid": ACCOUNT, "auth_token": {"secret": "twilio_token"}, "from": "+15550006000"},
    }
    return target | ({"text": text} if text else {})


def texting(*targets: dict[str, Any], outputs: list[str] | None = None) -> dict[str, Any]:
    body = definition("http://127.0.0.1:9/unused", outputs=outputs)
    body["input_schema"]["properties"]["phone"] = {"type": "string"}
    body["delivery"] = list(targets)
    return body


async def run_job(api: httpx.AsyncClient, body: dict[str, Any], inp: dict[str, Any] | None = None) -> dict[str, Any]:
    wf = await create_workflow(api, body)
    resp = await submit(api, wf["key"], inp)
    assert resp.status_code == 202, resp.text
    return await wait_job(api, resp.json()["job_id"], timeout=120)


async def attempts(engine, tenant_id, job_id: str) -> list[tuple[str, list[int | None]]]:  # type: ignore[no-untyped-def]
    return [(row.status, codes) for row, codes in await delivery_attempts(engine, tenant_id, job_id)]


async def test_a_job_is_delivered_by_sms_with_a_link_that_downloads(api, twilio, tenant, engine):
    to = f"+4477009{uuid.uuid4().int % 10**5:05d}"
    body = texting(
        sms("{{ input.phone }}", "Report for {{ input.company }} ({{ job.workflow_key }}):"), outputs=["html", "pdf"]
    )
    job = await run_job(api, body, {"company": "Acme", "phone": to})
    assert job["status"] == "delivered", job
    [got] = twilio.to(to)
    assert got.sender == "+15550006000"
    assert got.body.startswith(f"Report for Acme ({body['key']}):\n")
    [url] = re.findall(r"https?://\S+/download\?\S+", got.body)
    pdf = next(a for a in job["artifacts"] if a["kind"] == "pdf")
    async with httpx.AsyncClient() as anonymous:  # no bearer token: the link is signed
        resp = await anonymous.get(url)
    assert resp.status_code == 200 and len(resp.content) == pdf["size"]
    assert await attempts(engine, tenant.id, job["id"]) == [("delivered", [201])]


async def test_an_invalid_number_fails_at_once(api, twilio, tenant, engine):
    job = await run_job(api, texting(sms(INVALID_NUMBER)))
    assert job["status"] == "failed"
    assert job["error"]["code"] == "SmsRejected" and "21211" in job["error"]["message"]
    assert await attempts(engine, tenant.id, job["id"]) == [("failed", [400])]
    assert twilio.statuses(INVALID_NUMBER).count(400) >= 1 and twilio.to(INVALID_NUMBER) == []


@pytest.mark.parametrize(("prefix", "status"), [("+6141", 429), ("+8190", 503)])
async def test_rate_limited_and_unavailable_answers_are_retried(api, twilio, tenant, engine, prefix, status):
    to = f"{prefix}{uuid.uuid4().int % 10**7:07d}"
    twilio.script[to] = [status]
    job = await run_job(api, texting(sms(to)))
    assert job["status"] == "delivered", job
    assert twilio.statuses(to) == [status, 201]
    assert len(twilio.to(to)) == 1
    assert await attempts(engine, tenant.id, job["id"]) == [("delivered", [status, 201])]


async def test_the_send_rate_holds_two_sends_in_a_row(api, twilio, tenant, engine):
    first, second = (f"+3361{uuid.uuid4().int % 10**7:07d}" for _ in range(2))
    job = await run_job(api, texting(sms(first), sms(second)))
    assert job["status"] == "delivered", job
    [a], [b] = twilio.to(first), twilio.to(second)
    # Both targets are sent at once by the workflow; the bucket (burst 1) makes one wait for
    # the next token, 60 / RATE_PER_MINUTE seconds later. Nothing is dropped.
    assert abs(a.at - b.at) >= 0.8 * 60 / RATE_PER_MINUTE
    assert await attempts(engine, tenant.id, job["id"]) == [("delivered", [201]), ("delivered", [201])]


async def test_a_whatsapp_target_is_delivered_through_graph(api, graph_standin, tenant, engine):
    resp = await api.post("/v1/channels/whatsapp", json={"phone_number_id": PHONE_ID})
    assert resp.status_code in (200, 201), resp.text
    to = f"+4915{uuid.uuid4().int % 10**8:08d}"
    job = await run_job(api, texting({"type": "whatsapp", "to": to, "text": "Hello {{ input.company }}"}))
    assert job["status"] == "delivered", job
    [call] = [c for c in graph_standin.texts() if c.body["to"] == to.removeprefix("+")]
    assert call.path.endswith(f"/{PHONE_ID}/messages") and call.authorized
    assert call.body["text"]["body"].startswith("Hello Acme\n")
    assert re.search(r"/download\?\S+", call.body["text"]["body"])
    assert await attempts(engine, tenant.id, job["id"]) == [("delivered", [200])]


@pytest.mark.parametrize(
    ("target", "pointer", "code"),
    [
        (sms("0044 7700 900123"), "/delivery/0/to", "invalid_phone_number"),
        ({"type": "whatsapp", "to": "+12"}, "/delivery/0/to", "invalid_phone_number"),
        (sms("{{ input.mobile }}"), "/delivery/0/to", "bad_template"),
        (sms("+447700900123", "{% for x in input %}x{% endfor %}"), "/delivery/0/text", "bad_template"),
    ],
)
async def test_store_refuses_numbers_that_are_not_e164(tenant, target, pointer, code):
    resp = await tenant.api.post("/v1/workflows", json=texting(target))
    assert resp.status_code == 422, resp.text
    problems = resp.json()["errors"]
    assert any(p["pointer"] == pointer and p["code"] == code for p in problems), problems


@pytest.mark.parametrize(
    ("country", "answers", "outcome"),
    [("+33", [429, 503], ("delivered", [429, 503, 200])), ("+39", [400], ("failed", [400]))],
    ids=["rate-limited-then-unavailable", "rejected"],
)
async def test_graphs_error_answers_to_a_whatsapp_target(api, graph_standin, tenant, engine, country, answers, outcome):
    """Graph's 429 and 5xx are retried until it answers; any other 4xx (an invalid number) fails at once."""
    resp = await api.post("/v1/channels/whatsapp", json={"phone_number_id": PHONE_ID})
    assert resp.status_code in (200, 201, 409), resp.text
    to = f"{country}3{uuid.uuid4().int % 10**8:08d}"
    graph_standin.fail_next = list(answers)
    job = await run_job(api, texting({"type": "whatsapp", "to": to, "text": "Hello {{ input.company }}"}))
    assert graph_standin.fail_next == []
    assert job["status"] == ("delivered" if outcome[0] == "delivered" else "failed"), job
    assert await attempts(engine, tenant.id, job["id"]) == [outcome]
    sent = [c for c in graph_standin.texts() if c.body["to"] == to.removeprefix("+")]
    assert len(sent) == len(answers) + (outcome[0] == "delivered")  # one request per attempt, none after
