"""Template bombs on the real stack: they fail with TemplateLimitExceeded, while another
tenant's job runs in its normal time and the worker stays responsive and small."""

import asyncio
import time
from pathlib import Path

import httpx
from temporalio.client import Client

from devstack.receiver import WebhookReceiver
from tests.helpers import create_workflow, definition, submit, wait_job

LOOP = "{% for i in range(100000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"  # 1e9 iterations
BIG = "{{ 'x' * 300000000 }}"


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process ever had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def timed_job(api: httpx.AsyncClient, key: str, timeout: float) -> tuple[dict, float]:
    started = time.monotonic()
    resp = await submit(api, key)
    assert resp.status_code == 202, resp.text
    job = await wait_job(api, resp.json()["job_id"], timeout=timeout)
    return job, time.monotonic() - started


async def health_failures(url: str, until: asyncio.Event) -> list[str]:
    """Poll the worker's /health twice a second; every answer slower than 5 s or not 200."""
    failures = []
    async with httpx.AsyncClient(timeout=5.0) as http:
        while not until.is_set():
            try:
                if (await http.get(url)).status_code != 200:
                    failures.append("status")
            except httpx.HTTPError as e:
                failures.append(type(e).__name__)
            await asyncio.sleep(0.5)
    return failures


async def test_template_bombs_fail_alone(stack, tenant_a, tenant_b):
    worker = stack.group.pid("worker")
    with WebhookReceiver(tenant_a.webhook_secret) as hook_a, WebhookReceiver(tenant_b.webhook_secret) as hook_b:
        normal = await create_workflow(tenant_b.api, definition(hook_b.url))
        html_loop, step_loop, big = (definition(hook_a.url) for _ in range(3))
        html_loop["template"] = LOOP
        step_loop["steps"][0]["instructions"] = LOOP
        big["template"] = BIG
        bombs = [(await create_workflow(tenant_a.api, d))["key"] for d in (html_loop, step_loop, big)]

        job, idle = await timed_job(tenant_b.api, normal["key"], timeout=60)
        assert job["status"] == "delivered", job
        peak_before = peak_rss_mb(worker)

        bound = max(4 * idle, idle + 15)
        done = asyncio.Event()
        health = asyncio.create_task(
            health_failures(f"http://127.0.0.1:{stack.settings.worker_metrics_port}/health", done)
        )
        try:
            results = await asyncio.gather(
                *(timed_job(tenant_a.api, key, timeout=60) for key in bombs),
                timed_job(tenant_b.api, normal["key"], timeout=bound),
            )
        finally:
            done.set()
        failures = await health

    (loop_job, _), (step_job, _), (big_job, _), (normal_job, busy) = results
    assert normal_job["status"] == "delivered" and busy < bound, (busy, idle)
    for job, limit in (
        (loop_job, "TEMPLATE_CPU_SECONDS"),
        (step_job, "TEMPLATE_CPU_SECONDS"),
        (big_job, "TEMPLATE_MEMORY_MB"),
    ):
        assert job["status"] == "failed", job
        assert job["error"]["code"] == "TemplateLimitExceeded" and limit in job["error"]["message"], job["error"]
    assert loop_job["error"]["failed_step"] == "render:html" and big_job["error"]["failed_step"] == "render:html"
    assert step_job["error"]["failed_step"] == "step:research"
    research = next(s for s in step_job["steps"] if s["id"] == "research")
    assert research["status"] == "failed" and "TEMPLATE_CPU_SECONDS" in research["error"], research
    assert research["attempts"] == 1  # not retried
    assert failures == [], failures
    # The 300 MB string never reached the worker: its peak grew by far less than that.
    assert peak_rss_mb(worker) - peak_before < 150, (peak_before, peak_rss_mb(worker))


async def busy_answers(temporal: Client, job_id: str) -> int:
    """How many activity attempts of the job's workflow ended with TemplatePoolBusy."""
    count = 0
    async for event in temporal.get_workflow_handle(job_id).fetch_history_events():
        if event.HasField("activity_task_failed_event_attributes"):
            info = event.activity_task_failed_event_attributes.failure.application_failure_info
            count += info.type == "TemplatePoolBusy"
    return count


async def test_a_flood_of_bombs_is_waited_out_not_failed_for_busy(stack, temporal, tenant_a, tenant_b):
    """Tenant a's renders past its share of the pool end with TemplatePoolBusy and are
    scheduled again later: every bomb job still fails for its own limit, none for being
    busy, and tenant b's job runs in about its normal time meanwhile."""
    with WebhookReceiver(tenant_a.webhook_secret) as hook_a, WebhookReceiver(tenant_b.webhook_secret) as hook_b:
        normal = await create_workflow(tenant_b.api, definition(hook_b.url))
        bomb = definition(hook_a.url)
        bomb["template"] = LOOP
        bomb_key = (await create_workflow(tenant_a.api, bomb))["key"]
        _, idle = await timed_job(tenant_b.api, normal["key"], timeout=60)

        bound = max(4 * idle, idle + 15)
        results = await asyncio.gather(
            *(timed_job(tenant_a.api, bomb_key, timeout=240) for _ in range(8)),
            timed_job(tenant_b.api, normal["key"], timeout=bound),
        )
    (normal_job, busy), bombs = results[-1], [job for job, _ in results[:-1]]
    assert normal_job["status"] == "delivered" and busy < bound, (busy, idle)
    for job in bombs:
        assert job["status"] == "failed", job
        assert job["error"]["code"] == "TemplateLimitExceeded", job["error"]
    # Eight renders at a share of one child: most waited out at least one busy answer.
    answers = [await busy_answers(temporal, job["id"]) for job in bombs]
    assert sum(answers) >= 1, answers
