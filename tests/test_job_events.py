"""A job's event stream (GET /v1/jobs/{id}/events) against the real stack: the full sequence
of a pipeline, resuming with Last-Event-ID, a finished job's replay, tenants and roles."""

import asyncio

from devstack.receiver import WebhookReceiver
from tests.helpers import create_workflow, definition, submit, wait_job
from tests.job_events_support import read_events


async def test_a_pipeline_streams_its_statuses_in_order_and_ends(tenant_a):
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        wf = await create_workflow(tenant_a.api, definition(hook.url))
        job_id = (await submit(tenant_a.api, wf["key"])).json()["job_id"]
        live = await read_events(tenant_a.api, job_id)  # opened while the job runs: follows it to its end
        job = await wait_job(tenant_a.api, job_id)
    assert job["status"] == "delivered"
    assert [f.id for f in live] == list(range(1, len(live) + 1))
    statuses = [f.data["status"] for f in live if f.event == "status"]
    assert statuses == ["queued", "processing", "delivered"]
    assert live[-1].event == "end" and live[-1].data == {"status": "delivered", "error": None}
    replay = await asyncio.wait_for(read_events(tenant_a.api, job_id), 30)  # finished: replays and closes
    assert replay == live
