"""POST /v1/jobs/{id}/cancel on the real stack. A pipeline job cancelled mid-step and mid-PDF
runs on an in-process worker (the real workflow and activities, the session's PostgreSQL and
Temporal) whose model endpoint never answers and whose PDF timeout is long: the LLM call is
hung up on, the PDF child is killed, nothing is delivered, and the job and its steps say
cancelled. State machines waiting in a Wait state or on a callback, a finished job (409),
another tenant (404), a viewer (403) and a pending job not started yet use the session stack."""

import asyncio
import inspect
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import psutil
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from devstack.receiver import WebhookReceiver
from devstack.task_service import TaskService
from lodestone.settings import Settings
from services.outbox import start_job, start_one, sweep
from tests.callback_support import start_approval
from tests.helpers import cmdline, create_workflow, definition, submit, wait_job, worker_api
from tests.standins.hanging_llm import HangingLLM
from tests.test_machine_children import _doubler, _key, _parent
from tests.test_machine_jobs import new_job
from tests.test_ops import ops
from tests.test_outbox import outbox_paused
from workflows.names import SUBMISSION

PARAGRAPHS = 15000  # a PDF that takes WeasyPrint far longer than a cancel takes to reach it


@pytest.fixture(scope="module")
def hanging() -> Iterator[HangingLLM]:
    with HangingLLM() as llm:
        yield llm


@pytest.fixture(scope="module")
async def api(settings: Settings, temporal, engine, tenant_a, hanging) -> AsyncIterator[httpx.AsyncClient]:
    s = settings.model_copy(
        update={
            "temporal_task_queue": f"cancel-{uuid.uuid4()}",
            "llm_base_url": hanging.base_url,
            "llm_timeout_seconds": 120.0,
            "pdf_timeout_seconds": 300.0,
        }
    )
    async with worker_api(s, temporal, engine, tenant_a) as client:
        yield client


async def until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """What `check` (a function or a coroutine function) returns, once that is true."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        found = await found if inspect.isawaitable(found) else found
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        await asyncio.sleep(0.2)


async def start(api: httpx.AsyncClient, body: dict[str, Any], inp: dict[str, Any] | None = None) -> str:
    await create_workflow(api, body)
    resp = await submit(api, body["key"], inp)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["job_id"])


async def cancel(api: httpx.AsyncClient, job_id: str) -> httpx.Response:
    return await api.post(f"/v1/jobs/{job_id}/cancel")


async def run_status(temporal: Client, job_id: str) -> WorkflowExecutionStatus | None:
    return (await temporal.get_workflow_handle(job_id).describe()).status


async def closed(temporal: Client, job_id: str) -> WorkflowExecutionStatus | None:
    status = await run_status(temporal, job_id)
    return None if status == WorkflowExecutionStatus.RUNNING else status


async def test_a_job_cancelled_mid_llm_call_hangs_up_on_the_model_and_delivers_nothing(
    api, hanging, temporal, tenant_a
):
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        body = definition(hook.url)
        body["steps"][0]["model"] = "hang"  # research never answers; the other steps wait on it
        began, hung_up = hanging.began, hanging.hung_up
        job_id = await start(api, body)
        await until(lambda: hanging.began > began, 60, "the LLM call")

        resp = await cancel(api, job_id)
        assert resp.status_code == 202, resp.text
        assert resp.json() == {"job_id": job_id, "status": "cancelling"}
        asked = time.monotonic()
        job = await wait_job(api, job_id, timeout=60)
        # The activity hears of it with its next heartbeat's answer and closes the connection.
        await until(lambda: hanging.hung_up > hung_up, 60, "the model's connection closed")
        took = time.monotonic() - asked
        assert await run_status(temporal, job_id) == WorkflowExecutionStatus.CANCELED
        assert hook.received == []

    assert job["status"] == "cancelled", job
    assert [(s["id"], s["status"], s["error"]) for s in job["steps"]] == [
        ("research", "cancelled", "cancelled: the job was cancelled")
    ]
    assert job["deliveries"] == [] and job["artifacts"] == [], job
    assert took < 30, f"the LLM call went on {took:.1f}s after the cancel"
    again = await cancel(api, job_id)
    assert again.status_code == 202 and again.json() == {"job_id": job_id, "status": "cancelled"}


@pytest.mark.parametrize(("answer", "delivery"), [(204, "delivered"), (503, "cancelled")])
async def test_a_delivery_in_flight_at_the_cancel_ends_and_is_recorded_and_none_follows(
    api, temporal, tenant_a, answer, delivery
):
    arrived, release = threading.Event(), threading.Event()

    def hold(_status: int) -> None:
        arrived.set()
        release.wait(30)

    with WebhookReceiver(tenant_a.webhook_secret, fail_first=1 if answer == 503 else 0, before_answer=hold) as hook:
        job_id = await start(api, definition(hook.url))
        await until(arrived.is_set, 60, "the webhook request")
        resp = await cancel(api, job_id)
        assert resp.status_code == 202 and resp.json()["status"] == "cancelling", resp.text
        # The cancel is in the run's history; the attempt in flight still decides the delivery.
        await until(lambda: cancel_requested(temporal, job_id), 30, "the cancel request")
        twice = await cancel(api, job_id)  # Temporal has the first: the second answers the same
        assert twice.status_code == 202 and twice.json() == resp.json(), twice.text
        release.set()
        job = await wait_job(api, job_id, timeout=60)
        assert await run_status(temporal, job_id) == WorkflowExecutionStatus.CANCELED
        assert [r.status for r in hook.received] == [answer]  # no attempt after the cancel, no retry
    assert job["status"] == "cancelled", job
    [sent] = job["deliveries"]
    assert (sent["status"], sent["attempts"]) == (delivery, 1), sent


async def cancel_requested(temporal: Client, job_id: str) -> bool:
    history = await temporal.get_workflow_handle(job_id).fetch_history()
    return any(e.HasField("workflow_execution_cancel_requested_event_attributes") for e in history.events)


def pdf_children() -> list[psutil.Process]:
    """The render children of this process's PDF fork servers."""
    servers = [p for p in psutil.Process(os.getpid()).children() if "lodestone.pdf_server" in cmdline(p)]
    return [child for server in servers for child in server.children()]


async def test_a_job_cancelled_mid_pdf_render_kills_the_renderer(api, temporal):
    body = definition("http://127.0.0.1:9/never", outputs=["html", "pdf"])
    body["steps"] = body["steps"][:1]
    body["template"] = (
        f"<html><body>{{% for i in range({PARAGRAPHS}) %}}<p>Paragraph {{{{ i }}}} on {{{{ input.company }}}}</p>"
        "{% endfor %}</body></html>"
    )
    job_id = await start(api, body)
    await until(pdf_children, 120, "the PDF renderer")

    resp = await cancel(api, job_id)
    assert resp.status_code == 202 and resp.json()["status"] == "cancelling", resp.text
    job = await wait_job(api, job_id, timeout=60)
    # The render is cancelled as Temporal's activities are: the job says cancelled once the
    # cancel is recorded, and the render's child is killed at its next heartbeat. Under load a
    # missed heartbeat can also have started a second attempt, with a child of its own: every
    # child must stop, well before this job's render would have ended by itself (minutes).
    await until(lambda: pdf_children() == [], 60, "every PDF render child stopping")
    assert job["status"] == "cancelled", job
    assert [a["kind"] for a in job["artifacts"]] == ["html"], job["artifacts"]
    assert [(s["id"], s["status"]) for s in job["steps"]] == [("research", "completed")]
    assert await run_status(temporal, job_id) == WorkflowExecutionStatus.CANCELED


def waiting_machine() -> dict[str, Any]:
    return {
        "key": f"cancel-wait-{uuid.uuid4().hex[:8]}",
        "kind": "state_machine",
        "state_machine": {
            "StartAt": "Hold",
            "States": {"Hold": {"Type": "Wait", "Seconds": 3600, "Next": "Done"}, "Done": {"Type": "Succeed"}},
        },
    }


async def test_a_state_machine_waiting_in_a_wait_state_is_cancelled(tenant_a, temporal):
    job_id = await start(tenant_a.api, waiting_machine(), {})

    async def holding() -> bool:
        job = (await tenant_a.api.get(f"/v1/jobs/{job_id}")).json()
        return any(e["kind"] == "entered" and e["state"] == "Hold" for e in job["path"] or [])

    await until(holding, 60, "the Wait state")
    resp = await cancel(tenant_a.api, job_id)
    assert resp.status_code == 202 and resp.json()["status"] == "cancelling", resp.text
    job = await wait_job(tenant_a.api, job_id, timeout=60)
    assert job["status"] == "cancelled", job
    assert [(e["kind"], e["state"]) for e in job["path"]] == [("entered", "Hold")]
    assert await run_status(temporal, job_id) == WorkflowExecutionStatus.CANCELED


async def test_a_state_machine_waiting_on_a_callback_is_cancelled_and_its_token_refused(tenant_a, temporal):
    with TaskService(tenant_a.webhook_secret, {"approve": [{"queued": True}]}) as svc:
        job_id, token = await start_approval(tenant_a.api, svc, order=909)
        resp = await cancel(tenant_a.api, job_id)
        assert resp.status_code == 202 and resp.json()["status"] == "cancelling", resp.text
        job = await wait_job(tenant_a.api, job_id, timeout=60)
    assert job["status"] == "cancelled", job
    assert await run_status(temporal, job_id) == WorkflowExecutionStatus.CANCELED
    late = await tenant_a.api.post(f"/v1/task-tokens/{token}/success", json={"output": {"by": "ana"}})
    assert late.status_code == 410 and late.json()["code"] == "task_token_expired", late.text


async def test_a_finished_job_is_409_another_tenants_404_and_a_viewer_403(tenant_a, tenant_b, settings):
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        job_id = await start(tenant_a.api, definition(hook.url))
        assert (await wait_job(tenant_a.api, job_id))["status"] == "delivered"

    foreign = await cancel(tenant_b.api, job_id)
    assert foreign.status_code == 404, foreign.text
    viewer = tenant_a.token_for(settings, "viewer")
    looking = await tenant_a.api.post(f"/v1/jobs/{job_id}/cancel", headers={"Authorization": f"Bearer {viewer}"})
    assert looking.status_code == 403, looking.text
    finished = await cancel(tenant_a.api, job_id)
    assert finished.status_code == 409, finished.text
    assert finished.headers["content-type"].startswith("application/problem+json")
    assert finished.json()["code"] == "job_finished"
    assert (await tenant_a.api.get(f"/v1/jobs/{job_id}")).json()["status"] == "delivered"
    missing = await cancel(tenant_a.api, str(uuid.uuid4()))
    assert missing.status_code == 404, missing.text


async def test_a_pending_job_not_started_is_cancelled_at_once_and_never_runs(tenant_a, engine, temporal, settings):
    wf = await create_workflow(tenant_a.api, definition("http://127.0.0.1:9/never"))
    async with outbox_paused(engine):  # no outbox sweep starts it meanwhile
        job = await new_job(engine, tenant_a.id, wf, {"company": "Never"})
        resp = await cancel(tenant_a.api, str(job.id))
        assert resp.status_code == 202 and resp.json() == {"job_id": str(job.id), "status": "cancelled"}, resp.text
    assert await sweep(temporal, engine, settings) == 0
    assert await start_one(temporal, engine, settings, job.id, tenant_a.id) is False
    assert [w async for w in temporal.list_workflows(f"WorkflowId = '{job.id}'")] == []

    # A start already on its way when the cancel came (the API's, or a sweep's): the run ends
    # at its first status write, having done nothing.
    await start_job(temporal, settings, job, SUBMISSION)
    done = await until(lambda: closed(temporal, str(job.id)), 60, "the run's end")
    assert done == WorkflowExecutionStatus.COMPLETED, done
    shown = (await tenant_a.api.get(f"/v1/jobs/{job.id}")).json()
    assert shown["status"] == "cancelled" and shown["steps"] == [], shown
    again = await cancel(tenant_a.api, str(job.id))
    assert again.status_code == 202 and again.json()["status"] == "cancelled", again.text


async def test_lodestone_ops_cancel_is_the_same_cancel_for_any_tenant(tenant_b, settings, temporal):
    job_id = await start(tenant_b.api, waiting_machine(), {})
    code, out, err = await ops(settings, "cancel", job_id)
    assert (code, out) == (0, f"{job_id}\tcancelling\n"), err
    assert (await wait_job(tenant_b.api, job_id, timeout=60))["status"] == "cancelled"
    assert await run_status(temporal, job_id) == WorkflowExecutionStatus.CANCELED
    code, out, err = await ops(settings, "cancel", job_id)
    assert (code, out) == (0, f"{job_id}\tcancelled\n"), err

    with WebhookReceiver(tenant_b.webhook_secret) as hook:
        done = await start(tenant_b.api, definition(hook.url))
        assert (await wait_job(tenant_b.api, done))["status"] == "delivered"
    code, out, err = await ops(settings, "cancel", done)
    assert code == 1 and out == "" and "only a job that has not finished can be cancelled" in err, err
    code, _, err = await ops(settings, "cancel", str(uuid.uuid4()))
    assert code == 1 and "not found" in err, err


async def test_a_parent_machine_cancelled_cancels_the_child_execution_it_waits_on(tenant_a, temporal):
    child, parent = _key("sleeper"), _key("waits-on-sleeper")
    await create_workflow(tenant_a.api, _doubler(child, wait=3600))
    job_id = await start(tenant_a.api, _parent(parent, child, ".sync:2"), {"n": 2})

    async def child_waiting() -> str | None:
        [found] = (await tenant_a.api.get("/v1/jobs", params={"workflow_key": child})).json()["items"] or [None]
        job = found and (await tenant_a.api.get(f"/v1/jobs/{found['id']}")).json()
        return job["id"] if job and job["path"] else None

    child_id = await until(child_waiting, 60, "the child execution's Wait state")
    resp = await cancel(tenant_a.api, job_id)
    assert resp.status_code == 202 and resp.json()["status"] == "cancelling", resp.text
    assert (await wait_job(tenant_a.api, job_id, timeout=60))["status"] == "cancelled"
    child_job = await wait_job(tenant_a.api, child_id, timeout=60)
    assert child_job["status"] == "cancelled" and child_job["parent_job_id"] == job_id, child_job
    assert await run_status(temporal, child_id) == WorkflowExecutionStatus.CANCELED
    assert await run_status(temporal, job_id) == WorkflowExecutionStatus.CANCELED
