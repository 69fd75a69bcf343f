"""State machine Tasks on Lodestone's built-ins, through the real activity on the session's
PostgreSQL: llm (the OpenAI-compatible stand-in; a usage row per Task path), bedrock:invokeModel
answered by the tenant's model in Bedrock's shape, render (an artifact per path, never rendered
twice) and deliver (a signed webhook, sent once per path however often the activity runs)."""

import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlmodel import select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.machine_tasks import MachineTaskActivities
from activities.machine_tasks_deliver import delivery_webhook_id
from devstack.receiver import WebhookReceiver
from lodestone.db import tenant_session
from schema.tables import Artifact, Delivery, UsageRecord
from services.tenants import create_tenant
from tests.machine_tasks_support import build, close, make_job, task
from tests.standins.smtp_sink import SMTPSink

INVOKE = "arn:aws:states:::lambda:invoke"
MODEL = f"ok-machine-{uuid.uuid4().hex[:6]}"  # the stand-in answers ok-* models


@pytest.fixture(scope="module")
async def tenant(engine):  # type: ignore[no-untyped-def]
    return await create_tenant(engine, "Machine tasks (built-ins)")


@pytest.fixture(scope="module")
async def acts(settings, engine) -> AsyncIterator[MachineTaskActivities]:
    built = build(settings.model_copy(update={"llm_model": MODEL}), engine)
    yield built
    await close(built)


async def run(acts: MachineTaskActivities, inp):  # type: ignore[no-untyped-def]
    return await ActivityEnvironment().run(acts.run_task, inp)


async def usage(engine, tenant_id, job_id: str) -> dict[str, tuple[str, int, int]]:  # type: ignore[no-untyped-def]
    async with tenant_session(engine, tenant_id) as s:
        rows = (await s.exec(select(UsageRecord).where(UsageRecord.job_id == uuid.UUID(job_id)))).all()
    return {r.step_id: (r.model, r.tokens_in, r.tokens_out) for r in rows}


async def test_llm_answers_with_text_model_and_usage_and_records_usage_per_path(acts, tenant, engine, llm_standin):
    job_id = await make_job(engine, tenant.id)
    params = {"prompt": "Name three rivers", "system": "Be brief.", "max_tokens": 50, "temperature": 0.2}
    got = await run(acts, task(tenant.id, job_id, "Ask", "lodestone:llm", {**params, "model": MODEL}, []))
    # The stand-in answers with the prompt's first words and counts the words it was sent.
    assert got == {
        "text": "stand-in answer to: Be brief. Name three rivers",
        "model": MODEL,
        "usage": {"input_tokens": 5, "output_tokens": 7},
    }
    sent = [r for r in llm_standin.requests if r.get("model") == MODEL][-1]
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name three rivers"},
    ]
    assert (sent["max_tokens"], sent["temperature"]) == (50, 0.2)
    await run(acts, task(tenant.id, job_id, "Each/1/Ask", "lodestone:llm", {"prompt": "Another"}, []))
    assert await usage(engine, tenant.id, job_id) == {"Ask": (MODEL, 5, 7), "Each/1/Ask": (MODEL, 1, 7)}


async def test_a_lambda_bound_to_llm_gets_its_payload_as_the_prompt_in_the_payload_envelope(acts, tenant, engine):
    job_id = await make_job(engine, tenant.id)
    bindings = [{"function": "Summarize*", "llm": {"system": "Summarize:"}}]
    payload = {"FunctionName": "SummarizeReviews", "Payload": {"reviews": ["good"]}}
    got = await run(acts, task(tenant.id, job_id, "Sum", INVOKE, payload, bindings))
    assert got["StatusCode"] == 200
    assert got["Payload"]["text"] == 'stand-in answer to: Summarize: {"reviews": ["good"]}'
    assert list(await usage(engine, tenant.id, job_id)) == ["Sum"]


async def test_bedrock_invoke_model_is_answered_by_the_tenants_model_in_bedrocks_shape(acts, tenant, engine):
    job_id = await make_job(engine, tenant.id)
    payload = {
        "ModelId": "anthropic.claude-3-haiku-20240307-v1:0",
        "Body": {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello model"}]}],
        },
    }
    got = await run(acts, task(tenant.id, job_id, "Bed", "arn:aws:states:::bedrock:invokeModel", payload, []))
    assert got["ContentType"] == "application/json"
    assert got["Body"]["content"] == [{"type": "text", "text": "stand-in answer to: Hello model"}]
    assert got["Body"]["usage"] == {"input_tokens": 2, "output_tokens": 7}
    assert await usage(engine, tenant.id, job_id) == {"Bed": (MODEL, 2, 7)}


async def test_an_llm_failure_is_a_task_failure_with_its_reason(acts, tenant, engine):
    job_id = await make_job(engine, tenant.id)
    with pytest.raises(ApplicationError) as raised:
        await run(acts, task(tenant.id, job_id, "No", "lodestone:llm", {"prompt": "x", "model": "refuse"}, []))
    assert raised.value.type == "States.TaskFailed" and raised.value.message.startswith("LLMRefused: ")
    assert await usage(engine, tenant.id, job_id) == {}


async def test_render_stores_one_artifact_per_path_and_never_renders_it_twice(acts, tenant, engine):
    job_id = await make_job(engine, tenant.id)
    template = "<h1>{{ company }}</h1><p>{{ data.rows | length }}</p>"
    params = {"template": template, "data": {"company": "Acme", "rows": [1, 2]}}
    first = await run(acts, task(tenant.id, job_id, "Report", "lodestone:render", params, []))
    html = "<h1>Acme</h1><p>2</p>"
    assert first == {
        "artifact_id": first["artifact_id"],
        "kind": "Report.html",
        "bytes": len(html),
        "content_type": "text/html; charset=utf-8",
    }
    changed = {**params, "data": {"company": "Other", "rows": []}}
    again = await run(acts, task(tenant.id, job_id, "Report", "lodestone:render", changed, []))
    assert again == first
    async with tenant_session(engine, tenant.id) as s:
        [row] = (await s.exec(select(Artifact).where(Artifact.job_id == uuid.UUID(job_id)))).all()
    assert (str(row.id), row.kind) == (first["artifact_id"], "Report.html")
    assert await acts.deps.store.get_bytes(row.key) == html.encode()


async def test_a_binding_gives_render_its_template_and_a_bad_template_fails_the_task(acts, tenant, engine):
    job_id = await make_job(engine, tenant.id)
    bindings = [{"resource": "lodestone:report", "render": {"template": "<b>{{ name }}</b>"}}]
    got = await run(acts, task(tenant.id, job_id, "R", "lodestone:report", {"name": "Ann"}, bindings))
    assert (got["kind"], got["bytes"]) == ("R.html", len("<b>Ann</b>"))
    bad = {"template": "{{ ''.__class__.__mro__ }}", "data": {}}
    with pytest.raises(ApplicationError) as raised:
        await run(acts, task(tenant.id, job_id, "Bad", "lodestone:render", bad, []))
    assert raised.value.type == "States.TaskFailed" and raised.value.message.startswith("TemplateSecurityViolation")


async def test_deliver_sends_a_signed_webhook_once_per_path(acts, tenant, engine):
    job_id = await make_job(engine, tenant.id)
    with WebhookReceiver(tenant.webhook_secret) as hook:
        params = {"target": {"type": "webhook", "url": hook.url}, "body": {"order": 7}}
        first = await run(acts, task(tenant.id, job_id, "Send", "lodestone:deliver", params, []))
        again = await run(acts, task(tenant.id, job_id, "Send", "lodestone:deliver", params, []))
        other = await run(acts, task(tenant.id, job_id, "Map/1/Send", "lodestone:deliver", params, []))
    msg_id = delivery_webhook_id(job_id, "Send")
    assert first == again == {"webhook_id": msg_id, "status": "delivered"}
    assert other["webhook_id"] != msg_id
    assert [(r.webhook_id, r.verified, json.loads(r.body)) for r in hook.received] == [
        (msg_id, True, {"order": 7}),
        (other["webhook_id"], True, {"order": 7}),
    ]
    async with tenant_session(engine, tenant.id) as s:
        rows = (await s.exec(select(Delivery).where(Delivery.job_id == uuid.UUID(job_id)))).all()
    assert sorted((r.webhook_id, r.status, r.attempts) for r in rows) == sorted(
        [(msg_id, "delivered", 1), (other["webhook_id"], "delivered", 1)]
    )


async def test_a_lambda_bound_to_deliver_sends_its_payload(acts, tenant, engine):
    job_id = await make_job(engine, tenant.id)
    with WebhookReceiver(tenant.webhook_secret) as hook:
        bindings = [{"function": "Notify", "deliver": {"target": {"type": "webhook", "url": hook.url}}}]
        payload = {"FunctionName": "Notify", "Payload": {"order": 9}}
        got = await run(acts, task(tenant.id, job_id, "N", INVOKE, payload, bindings))
    assert got["Payload"] == {"webhook_id": delivery_webhook_id(job_id, "N"), "status": "delivered"}
    assert [json.loads(r.body) for r in hook.received] == [{"order": 9}]


async def test_a_failed_delivery_fails_the_task_and_its_retry_sends_the_same_message(acts, tenant, engine):
    job_id = await make_job(engine, tenant.id)
    with WebhookReceiver(tenant.webhook_secret, fail_first=1) as hook:
        params = {"target": {"type": "webhook", "url": hook.url}, "body": {"n": 1}}
        with pytest.raises(ApplicationError) as raised:
            await run(acts, task(tenant.id, job_id, "Send", "lodestone:deliver", params, []))
        got = await run(acts, task(tenant.id, job_id, "Send", "lodestone:deliver", params, [], attempt=2))
    assert raised.value.type == "States.TaskFailed" and "answered 503" in raised.value.message
    assert got["status"] == "delivered"
    assert [r.status for r in hook.received] == [503, 204]
    assert len({r.webhook_id for r in hook.received}) == 1


async def test_deliver_an_artifact_describes_it_as_a_pipeline_delivery_does(acts, tenant, engine, settings):
    job_id = await make_job(engine, tenant.id)
    made = await run(acts, task(tenant.id, job_id, "R", "lodestone:render", {"template": "<i>x</i>", "data": {}}, []))
    bindings = [{"resource": "lodestone:deliver", "deliver": {"target": {"type": "webhook", "url": "placeholder"}}}]
    with WebhookReceiver(tenant.webhook_secret) as hook:
        bindings[0]["deliver"]["target"]["url"] = hook.url
        await run(
            acts, task(tenant.id, job_id, "D", "lodestone:deliver", {"artifact_id": made["artifact_id"]}, bindings)
        )
    [received] = hook.received
    sent = json.loads(received.body)
    assert sent["type"] == "job.delivered" and sent["data"]["job_id"] == job_id
    [artifact] = sent["data"]["artifacts"]
    assert (artifact["id"], artifact["kind"], artifact["size"]) == (made["artifact_id"], "R.html", len("<i>x</i>"))
    assert artifact["url"] == f"{settings.api_url}/v1/artifacts/{made['artifact_id']}"
    async with httpx.AsyncClient(timeout=30) as anon:  # its signed link needs no token
        got = await anon.get(artifact["download_url"])
    assert got.status_code == 200 and got.content == b"<i>x</i>"


async def test_render_a_pdf_artifact(acts, tenant, engine):
    job_id = await make_job(engine, tenant.id)
    params = {"template": "<h1>{{ title }}</h1>", "data": {"title": "Quarterly"}, "format": "pdf"}
    got = await run(acts, task(tenant.id, job_id, "Pdf", "lodestone:render", params, []))
    assert (got["kind"], got["content_type"]) == ("Pdf.pdf", "application/pdf")
    async with tenant_session(engine, tenant.id) as s:
        row = await s.get(Artifact, uuid.UUID(got["artifact_id"]))
    blob = await acts.deps.store.get_bytes(row.key)
    assert blob.startswith(b"%PDF-") and len(blob) == got["bytes"]


async def test_deliver_an_artifact_by_email_once_per_path(settings, engine, tenant):
    with SMTPSink() as sink:
        mail = settings.model_copy(
            update={"smtp_host": "127.0.0.1", "smtp_port": sink.port, "smtp_from": "reports@lodestone.example"}
        )
        mailer = build(mail, engine)
        try:
            job_id = await make_job(engine, tenant.id)
            made = await run(mailer, task(tenant.id, job_id, "R", "lodestone:render", {"template": "<p>hi</p>"}, []))
            to = f"ops-{uuid.uuid4().hex[:8]}@example.com"
            params = {"target": {"type": "email", "to": to}, "artifact_id": made["artifact_id"]}
            first = await run(mailer, task(tenant.id, job_id, "Mail", "lodestone:deliver", params, []))
            again = await run(mailer, task(tenant.id, job_id, "Mail", "lodestone:deliver", params, []))
        finally:
            await close(mailer)
    assert first == again == {"webhook_id": delivery_webhook_id(job_id, "Mail"), "status": "delivered"}
    [got] = sink.to(to)
    assert got.message_id == f"<{first['webhook_id']}@lodestone.example>"
    assert f"/v1/artifacts/{made['artifact_id']}/download?" in got.message.get_content()
