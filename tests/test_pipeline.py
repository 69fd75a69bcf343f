"""The submission pipeline end to end, against the real stack."""

import io
import json
import uuid

import pypdf
from sqlmodel import select
from temporalio.api.enums.v1 import EventType

from devstack.receiver import WebhookReceiver
from lodestone.db import tenant_session
from schema.tables import DeliveryAttempt, JobFailure
from tests.helpers import create_workflow, definition, submit, wait_job


async def test_full_pipeline_delivers_signed_webhook(tenant_a, temporal):
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        wf = await create_workflow(tenant_a.api, definition(hook.url, outputs=["html", "pdf"]))
        resp = await submit(tenant_a.api, wf["key"], {"company": "Acme Anvils"})
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["job_id"]
        job = await wait_job(tenant_a.api, job_id)
        received = hook.wait_for_success(timeout=10)

    assert job["status"] == "delivered", job
    assert received is not None and received.verified
    assert len(hook.received) == 1
    payload = json.loads(received.body)
    assert payload["data"]["job_id"] == job_id
    assert {a["kind"] for a in payload["data"]["artifacts"]} == {"html", "pdf"}
    assert {s["id"]: s["status"] for s in job["steps"]} == dict.fromkeys(
        ["research", "angles", "outline", "write"], "completed"
    )
    assert all(s["usage"]["model"] == "offline" and s["usage"]["tokens_in"] > 0 for s in job["steps"])
    assert job["deliveries"][0]["status"] == "delivered"
    assert job["links"]["temporal"].endswith(f"/workflows/{job_id}")

    html = next(a for a in job["artifacts"] if a["kind"] == "html")
    body = (await tenant_a.api.get(f"/v1/artifacts/{html['id']}")).text
    assert "<h1>Acme Anvils</h1>" in body and "[offline output" in body
    pdf = next(a for a in job["artifacts"] if a["kind"] == "pdf")
    data = (await tenant_a.api.get(f"/v1/artifacts/{pdf['id']}")).content
    assert data.startswith(b"%PDF") and len(data) == pdf["size"]
    assert "Acme Anvils" in pypdf.PdfReader(io.BytesIO(data)).pages[0].extract_text()

    # angles and outline ran in parallel: both were scheduled before either completed.
    events = [e async for e in temporal.get_workflow_handle(job_id).fetch_history_events()]
    order = []
    scheduled = {}
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            args = e.activity_task_scheduled_event_attributes
            step = json.loads(args.input.payloads[0].data).get("step_id") if args.input.payloads else None
            scheduled[e.event_id] = step
            order.append(("scheduled", step))
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            order.append(("completed", scheduled[e.activity_task_completed_event_attributes.scheduled_event_id]))
    first_done = min(order.index(("completed", s)) for s in ("angles", "outline"))
    assert order.index(("scheduled", "angles")) < first_done
    assert order.index(("scheduled", "outline")) < first_done


async def test_artifact_range_requests(tenant_a):
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        wf = await create_workflow(tenant_a.api, definition(hook.url))
        job = await wait_job(tenant_a.api, (await submit(tenant_a.api, wf["key"])).json()["job_id"])
    art = job["artifacts"][0]
    full = (await tenant_a.api.get(f"/v1/artifacts/{art['id']}")).content
    part = await tenant_a.api.get(f"/v1/artifacts/{art['id']}", headers={"Range": "bytes=5-14"})
    assert part.status_code == 206 and part.content == full[5:15]
    assert part.headers["content-range"] == f"bytes 5-14/{len(full)}"
    tail = await tenant_a.api.get(f"/v1/artifacts/{art['id']}", headers={"Range": "bytes=-7"})
    assert tail.status_code == 206 and tail.content == full[-7:]
    bad = await tenant_a.api.get(f"/v1/artifacts/{art['id']}", headers={"Range": f"bytes={len(full)}-"})
    assert bad.status_code == 416 and bad.headers["content-type"] == "application/problem+json"


async def test_webhook_retry_keeps_one_webhook_id(tenant_a, engine):
    with WebhookReceiver(tenant_a.webhook_secret, fail_first=2) as hook:
        wf = await create_workflow(tenant_a.api, definition(hook.url))
        job_id = (await submit(tenant_a.api, wf["key"])).json()["job_id"]
        job = await wait_job(tenant_a.api, job_id, timeout=90)
    assert job["status"] == "delivered"
    assert [r.status for r in hook.received] == [503, 503, 204]
    assert len(hook.successes()) == 1
    assert len({r.webhook_id for r in hook.received}) == 1
    delivery = job["deliveries"][0]
    async with tenant_session(engine, tenant_a.id) as s:
        attempts = (
            await s.exec(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == uuid.UUID(delivery["id"])))
        ).all()
    assert sorted(a.attempt for a in attempts) == [1, 2, 3]
    assert {a.webhook_id for a in attempts} == {delivery["webhook_id"]} == {hook.received[0].webhook_id}
    assert [a.status_code for a in sorted(attempts, key=lambda a: a.attempt)] == [503, 503, 204]


async def test_non_retryable_step_failure_writes_dead_letter(tenant_a, engine, llm_standin):
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        body = definition(hook.url)
        body["steps"][1]["model"] = "empty"  # the stand-in answers this model with no text
        wf = await create_workflow(tenant_a.api, body)
        job_id = (await submit(tenant_a.api, wf["key"])).json()["job_id"]
        job = await wait_job(tenant_a.api, job_id)
    assert job["status"] == "failed"
    assert hook.received == []
    assert llm_standin.count("empty") == 1  # non-retryable: asked once
    assert job["error"]["code"] == "LLMEmptyAnswer"
    assert job["error"]["failed_step"] == "step:angles"
    async with tenant_session(engine, tenant_a.id) as s:
        failure = (await s.exec(select(JobFailure).where(JobFailure.job_id == uuid.UUID(job_id)))).one()
    assert failure.temporal_link.endswith(f"/workflows/{job_id}")
    assert {s["id"]: s["status"] for s in job["steps"]}["angles"] == "failed"
