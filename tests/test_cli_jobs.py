"""`lodestone jobs` on the real stack, the CLI in a subprocess: submit --watch of a pipeline
on the streaming stand-in model prints its steps, their tokens, the artifacts and exits 0;
watch of a failed job exits 1; get and list show what the API holds."""

import asyncio
import os
import subprocess
from typing import Any

from devstack.processes import venv_bin
from devstack.receiver import WebhookReceiver
from tests.helpers import create_workflow, definition, submit, wait_job

STEPS = ("research", "angles", "outline", "write")


async def lodestone(settings, tenant, *args: str, role: str = "editor") -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LODESTONE_")} | {
        "LODESTONE_API_URL": settings.api_url,
        "LODESTONE_TOKEN": tenant.token_for(settings, role),
    }
    return await asyncio.to_thread(
        subprocess.run,
        [venv_bin("lodestone"), "jobs", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


async def test_submit_watch_prints_steps_tokens_and_artifacts_and_exits_0(settings, stack, tenant_a):
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        wf = await create_workflow(tenant_a.api, definition(hook.url, model="trickle-watch", outputs=["html"]))
        run = await lodestone(settings, tenant_a, "submit", wf["key"], "--input", '{"company": "Acme"}', "--watch")
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    job_id, status = lines[0].split("\t")
    job = await wait_job(tenant_a.api, job_id)
    assert job["status"] == "delivered" and status in ("pending", "queued", "processing"), (status, job)
    for step in STEPS:
        started, completed = lines.index(f"step {step} started"), lines.index(f"step {step} completed")
        # The step's tokens, as the stand-in streamed its answer, between its start and its end.
        streamed = "".join(
            x.removeprefix(f"  {step} › ") for x in lines[started:completed] if x.startswith(f"  {step} › ")
        )
        assert streamed.startswith("stand-in answer to:") and streamed.endswith("Acme."), run.stdout
    [artifact] = job["artifacts"]
    assert f"artifact {artifact['id']} html {artifact['url']}" in lines
    assert any(x.startswith(f"delivery {hook.url} attempt 1 delivered") for x in lines), run.stdout
    assert lines[-1] == "job delivered"
    events = [x for x in lines[1:] if not x.startswith("  ")]
    assert len(set(events)) == len(events), "a line was printed twice"
    assert sum(x.startswith("  ") for x in lines) > len(STEPS), "the tokens came in one piece per step"


async def test_watch_of_a_failed_job_exits_1(settings, stack, tenant_a):
    wf = await create_workflow(tenant_a.api, definition("http://127.0.0.1:9/never", model="refuse"))
    resp = await submit(tenant_a.api, wf["key"])
    job_id = resp.json()["job_id"]
    run = await lodestone(settings, tenant_a, "watch", job_id, role="viewer")
    assert run.returncode == 1, run.stdout + run.stderr
    assert any(x.startswith("step research failed") for x in run.stdout.splitlines()), run.stdout
    assert run.stdout.splitlines()[-1].startswith("job failed")
    assert (await wait_job(tenant_a.api, job_id))["status"] == "failed"


async def test_get_and_list_show_the_tenants_jobs(settings, stack, tenant_a, tenant_b):
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        wf = await create_workflow(tenant_a.api, definition(hook.url))
        job_id = (await submit(tenant_a.api, wf["key"])).json()["job_id"]
        job: dict[str, Any] = await wait_job(tenant_a.api, job_id)
    shown = await lodestone(settings, tenant_a, "get", job_id)
    assert shown.returncode == 0, shown.stderr
    assert f"status:\t{job['status']}" in shown.stdout.splitlines()
    listed = await lodestone(settings, tenant_a, "list", "--workflow-key", wf["key"])
    assert listed.stdout.splitlines() == [f"{job_id}\t{job['status']}\t{wf['key']}\t{job['created_at']}"]
    other = await lodestone(settings, tenant_b, "watch", job_id)
    assert other.returncode == 2 and "HTTP 404" in other.stderr
