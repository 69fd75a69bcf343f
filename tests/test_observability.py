"""Observability against the running stack: the request id and trace id reach the worker's
log lines, one trace spans API, workflow and activities, and both processes serve metrics."""

import asyncio
import json
import time
import uuid

import httpx

from devstack.receiver import WebhookReceiver
from tests.helpers import create_workflow, definition, wait_job
from workflows.types import JOB_ID, STATUS, TENANT_ID, WORKFLOW_KEY


async def _run_job(tenant, headers: dict[str, str]) -> str:  # type: ignore[no-untyped-def]
    with WebhookReceiver(tenant.webhook_secret) as hook:
        wf = await create_workflow(tenant.api, definition(hook.url))
        resp = await tenant.api.post(
            "/v1/submissions", headers=headers, json={"workflow_key": wf["key"], "input": {"company": "Acme"}}
        )
        assert resp.status_code == 202, resp.text
        assert resp.headers["x-request-id"] == headers["X-Request-Id"]
        job = await wait_job(tenant.api, resp.json()["job_id"])
        assert job["status"] == "delivered", job
        return job["id"]


def _log_lines(stack, name: str) -> list[dict]:  # type: ignore[no-untyped-def]
    lines = []
    for raw in (stack.logs / f"{name}.log").read_text().splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


async def test_request_and_trace_ids_reach_worker_logs_and_one_trace(tenant_a, stack, otlp_collector):
    rid, trace_id = f"req-{uuid.uuid4().hex}", uuid.uuid4().hex
    job_id = await _run_job(tenant_a, {"X-Request-Id": rid, "traceparent": f"00-{trace_id}-{'1' * 16}-01"})

    expected = {
        ("lodestone-api", "POST /v1/submissions"),
        ("lodestone-api", "StartWorkflow:SubmissionWorkflow"),
        ("lodestone-worker", "RunWorkflow:SubmissionWorkflow"),
        ("lodestone-worker", "RunActivity:run_step"),
        ("lodestone-worker", "RunActivity:send_webhook"),
        ("lodestone-worker", "RunActivity:record_delivery_attempt"),
    }
    deadline = time.monotonic() + 20  # each process exports in its own batches
    while time.monotonic() < deadline:
        names = {(s.service, s.name) for s in otlp_collector.in_trace(trace_id)}
        if expected <= names:
            break
        await asyncio.sleep(0.5)
    assert expected <= names, names
    spans = otlp_collector.in_trace(trace_id)
    api_spans = [s for s in spans if s.name == "POST /v1/submissions"]
    assert len(api_spans) == 1, api_spans  # one server span per request, not one per layer
    assert api_spans[0].parent_span_id == "1" * 16  # continued the caller's trace

    mine = [line for line in _log_lines(stack, "worker") if line.get("job_id") == job_id]
    assert mine, "the worker logged nothing for the job"
    for line in mine:
        assert line["request_id"] == rid, line
        assert line["trace_id"] == trace_id, line
        assert line["tenant_id"] == str(tenant_a.id) and line["workflow_id"] == job_id, line


async def test_api_and_worker_metrics(tenant_a, settings, stack):
    rid = f"req-{uuid.uuid4().hex}"
    await _run_job(tenant_a, {"X-Request-Id": rid})
    scraper = {"Authorization": f"Bearer {stack.env()['METRICS_TOKEN']}"}  # tenant series need it
    async with httpx.AsyncClient(timeout=10, headers=scraper) as http:
        api = (await http.get(f"{settings.api_url}/metrics")).text
        worker = (await http.get(f"http://127.0.0.1:{settings.worker_metrics_port}/metrics")).text
        health = (await http.get(f"http://127.0.0.1:{settings.worker_metrics_port}/health")).json()
    tenant = str(tenant_a.id)
    assert f'lodestone_submissions_total{{outcome="accepted",tenant_id="{tenant}"' in api
    assert 'lodestone_http_request_duration_seconds_bucket{le="0.05",method="POST",route="/v1/submissions"' in api
    assert "temporal_request" in api  # the SDK client's own metrics
    labels = f'model="offline",provider="default",tenant_id="{tenant}"'
    assert f'lodestone_llm_tokens_total{{direction="in",{labels}}}' in worker
    assert f"lodestone_llm_cost_usd_total{{{labels}}}" in worker
    assert 'lodestone_step_duration_seconds_count{model="offline",outcome="completed"}' in worker
    assert 'lodestone_delivery_attempts_total{kind="webhook",outcome="delivered"}' in worker
    assert 'lodestone_job_duration_seconds_count{status="delivered"}' in worker
    assert f'lodestone_task_queue_backlog{{task_queue="{settings.temporal_task_queue}",type="activity"}}' in worker
    assert "temporal_activity_execution_latency" in worker and "temporal_workflow_completed" in worker
    assert health["status"] == "polling"


async def test_web_ui_search_attributes_follow_the_job(tenant_a, temporal):
    job_id = await _run_job(tenant_a, {"X-Request-Id": f"req-{uuid.uuid4().hex}"})
    attrs = (await temporal.get_workflow_handle(job_id).describe()).typed_search_attributes
    assert attrs.get(TENANT_ID) == str(tenant_a.id) and attrs.get(JOB_ID) == job_id
    assert attrs.get(WORKFLOW_KEY) and attrs.get(STATUS) == "delivered"
    deadline = time.monotonic() + 10  # visibility is eventually consistent
    while True:
        found = [w.id async for w in temporal.list_workflows(f'JobStatus="delivered" AND JobId="{job_id}"')]
        if found or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    assert found == [job_id]
