"""`lodestone jobs` on the real stack, the CLI in a subprocess: submit --watch of a pipeline
on the streaming stand-in model prints its steps, their tokens, the artifacts and exits 0;
watch of a failed job exits 1; of a state machine, its states and tokens, exit 0; watch
through a relay that cuts its connections mid-event resumes and prints what an uncut watch
prints; get and list show what the API holds."""

import asyncio
import os
import re
import subprocess
import uuid
from typing import Any

from devstack.processes import venv_bin
from devstack.receiver import WebhookReceiver
from lodestone.settings import Settings
from tests.conftest import TenantCtx
from tests.helpers import create_workflow, definition, submit, wait_job
from tests.test_db_errors import FreezingProxy
from tests.test_job_events_durable import llm_machine

STEPS = ("research", "angles", "outline", "write")


async def lodestone(
    settings: Settings, tenant: TenantCtx, *args: str, role: str = "editor", api_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LODESTONE_")} | {
        "LODESTONE_API_URL": api_url or settings.api_url,
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


async def test_watch_shows_a_retry_and_the_next_attempts_tokens_apart(settings, stack, tenant_a):
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        wf = await create_workflow(tenant_a.api, definition(hook.url, model=f"cutoff-1-{uuid.uuid4().hex[:8]}"))
        run = await lodestone(settings, tenant_a, "submit", wf["key"], "--input", '{"company": "Acme"}', "--watch")
    assert run.returncode == 0, run.stdout + run.stderr
    research = [x for x in run.stdout.splitlines() if x.startswith(("step research", "  research"))]
    started, cut, retrying, again, second, completed = research
    assert (started, again, completed) == (
        "step research started",
        "step research started (attempt 2)",
        "step research completed",
    ), run.stdout
    # The cut attempt's tokens, then the retry with its error and time, then the next attempt's, marked apart.
    assert cut.startswith("  research › stand-in") and second.startswith("  research (attempt 2) › stand-in answer")
    assert re.fullmatch(
        r"step research retrying \(attempt 1\): LLMTransient: .+; next attempt at \d\d:\d\d:\d\d", retrying
    )


async def test_watch_of_a_state_machine_shows_its_states_and_tokens(settings, stack, tenant_a):
    wf = await create_workflow(tenant_a.api, llm_machine(f"sm-watch-{uuid.uuid4().hex[:8]}", "trickle-machine"))
    job_id = (await submit(tenant_a.api, wf["key"], {"company": "Acme"})).json()["job_id"]
    run = await lodestone(settings, tenant_a, "watch", job_id, role="viewer")
    assert run.returncode == 0, run.stdout + run.stderr
    job = await wait_job(tenant_a.api, job_id)
    lines = run.stdout.splitlines()
    states = [x for x in lines if x.startswith("state ")]
    assert states == ["state Ask entered", "state Ask succeeded", "state Done entered", "state Done succeeded"]
    asked = lines[lines.index("state Ask entered") + 1 : lines.index("state Ask succeeded")]
    assert "".join(x.removeprefix("  Ask › ") for x in asked) == job["output"]["text"], run.stdout
    assert lines[-1] == "job succeeded"


class CuttingRelay(FreezingProxy):
    """A TCP relay to the API that cuts each of its first `cuts` connections in the middle
    of the response's `frame`-th SSE frame (the client sees a dropped connection)."""

    def __init__(self, upstream: int, cuts: int, frame: int) -> None:
        super().__init__(upstream)
        self.cuts, self.frame, self.connections = cuts, frame, 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        cut = self.connections <= self.cuts
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        for task in (self._relay(reader, up_writer, False), self._relay(up_reader, writer, cut)):
            self.tasks.add(asyncio.create_task(task))

    async def _relay(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, cut: bool) -> None:
        sent = b""
        try:
            while data := await src.read(65536):
                at = -1
                for _ in range(self.frame if cut else 0):
                    at = (sent + data).find(b"id: ", at + 1)
                if at >= 0:  # into the frame: its id's first digit, not its end
                    dst.write((sent + data)[len(sent) : at + 5])
                    break
                sent += data if cut else b""
                dst.write(data)
                await dst.drain()
        finally:
            dst.close()


async def test_watch_resumes_through_cut_connections_without_repeating_a_line(settings, stack, tenant_a):
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        wf = await create_workflow(tenant_a.api, definition(hook.url, model="trickle-cut"))
        job_id = (await submit(tenant_a.api, wf["key"])).json()["job_id"]
        assert (await wait_job(tenant_a.api, job_id))["status"] == "delivered"
    whole = await lodestone(settings, tenant_a, "watch", job_id, role="viewer")
    async with CuttingRelay(settings.api_port, cuts=2, frame=6) as relay:
        resumed = await lodestone(settings, tenant_a, "watch", job_id, role="viewer", api_url=relay.url)
    assert (whole.returncode, resumed.returncode) == (0, 0), resumed.stderr
    assert relay.connections == 3 and resumed.stderr.count("reconnecting after event") == 2, resumed.stderr
    assert resumed.stdout.replace(relay.url, settings.api_url) == whole.stdout


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
