"""A callback Task's wait survives its worker: on a stack of this module's own (so the session
stack's worker is not touched), the worker is killed with SIGKILL while a job waits on its task
token, a new worker starts, and the success posted then still completes the job with its output.
A worker killed before the request's answer reached Temporal sends the request again, as the same
request (the same webhook-id and task token), which is what docs/state-machines.md promises."""

import asyncio
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from devstack.keys import mint_token
from devstack.processes import free_port
from devstack.task_service import TaskService
from lodestone.db import make_engine
from services.tenants import create_tenant
from tests.callback_support import approval_machine, start_approval
from tests.faults.stack import FaultStack, fault_settings
from tests.helpers import create_workflow, submit, wait_job

pytestmark = pytest.mark.timeout(600)
POLLING = "worker polling task queue"


@pytest.fixture(scope="module")
def own_stack() -> Iterator[FaultStack]:
    with tempfile.TemporaryDirectory(prefix="lodestone-callbacks-") as tmp:
        # The fault suite's settings; this test calls no model and sends no mail.
        settings = fault_settings(Path(tmp), llm_url="http://127.0.0.1:9", smtp_port=free_port())
        stack = FaultStack(settings)
        try:
            stack.start()
            wait_for_polling(stack, 1)
            yield stack
        finally:
            stack.stop()


def wait_for_polling(stack: FaultStack, times: int, timeout: float = 120) -> None:
    """Until the worker log says `times` workers have started polling."""
    log, deadline = stack.stack.logs / "worker.log", time.monotonic() + timeout
    while (log.read_text() if log.exists() else "").count(POLLING) < times:
        stack.check()
        assert time.monotonic() < deadline, f"no worker polling in {timeout:.0f}s"
        time.sleep(0.2)


@pytest.fixture
async def api(own_stack: FaultStack) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    s = own_stack.settings
    engine = make_engine(s.app_database_url, 1)
    try:
        row = await create_tenant(engine, "Callbacks")
    finally:
        await engine.dispose()
    token = mint_token(s.data_path, issuer=s.issuer, audience=s.auth_audience, tenant_id=str(row.id), roles=["admin"])
    async with httpx.AsyncClient(base_url=s.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        yield c, row.webhook_secret


async def request_answered(stack: FaultStack, job_id: str, timeout: float = 60) -> None:
    """Until the job's history holds the request activity's completion: from then on the job
    waits on its token, with nothing of the Task left to run again."""
    temporal = await Client.connect(stack.settings.temporal_target)
    deadline = time.monotonic() + timeout
    while True:
        history = await temporal.get_workflow_handle(job_id).fetch_history()
        if any(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED for e in history.events):
            return
        assert time.monotonic() < deadline, f"the request's activity did not complete in {timeout:.0f}s"
        await asyncio.sleep(0.2)


async def test_a_wait_outlives_a_killed_worker(own_stack, api):
    client, secret = api
    with TaskService(secret, {"approve": [{"queued": True}]}) as svc:
        job_id, token = await start_approval(client, svc, order=303)
        await request_answered(own_stack, job_id)
        own_stack.kill("worker")
        beat = await client.post(f"/v1/task-tokens/{token}/heartbeat")  # no worker: the signal waits in the history
        assert beat.status_code == 200, beat.text
        own_stack.start_worker()
        wait_for_polling(own_stack, 2)
        ok = await client.post(f"/v1/task-tokens/{token}/success", json={"output": {"by": "ana"}})
        assert ok.status_code == 200, ok.text
        job = await wait_job(client, job_id, timeout=90)
    assert job["status"] == "succeeded", job
    assert job["output"] == {"order": 303, "decision": {"by": "ana"}}
    assert len(svc.calls_to("approve")) == 1  # the request was not sent again by the new worker


async def test_a_request_cut_off_by_a_killed_worker_is_sent_again_as_the_same_request(own_stack, api):
    client, secret = api
    held, release = threading.Event(), threading.Event()

    def approve(body: object) -> dict[str, bool]:
        if not held.is_set():  # the first request: answered only after its worker is gone
            held.set()
            release.wait(30)
        return {"queued": True}

    with TaskService(secret, {"approve": approve}) as svc:
        body = approval_machine(svc.url)
        await create_workflow(client, body)
        resp = await submit(client, body["key"], {"order": 404})
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["job_id"]
        assert await asyncio.to_thread(held.wait, 60), "no approval request in 60s"
        own_stack.kill("worker")
        release.set()
        own_stack.start_worker()
        # The lost attempt is found by its missed heartbeat (30 s) and run again by the new worker.
        for _ in range(900):
            if len(svc.calls_to("approve")) >= 2:
                break
            await asyncio.sleep(0.1)
        calls = svc.calls_to("approve")
        assert len(calls) == 2, calls
        first, again = calls
        assert again.headers["webhook-id"] == first.headers["webhook-id"]
        assert again.body == first.body and again.body["order"] == 404
        await request_answered(own_stack, job_id)
        ok = await client.post(f"/v1/task-tokens/{again.body['token']}/success", json={"output": {"by": "li"}})
        assert ok.status_code == 200, ok.text
        job = await wait_job(client, job_id, timeout=90)
    assert job["status"] == "succeeded", job
    assert job["output"] == {"order": 404, "decision": {"by": "li"}}
    assert len(svc.calls_to("approve")) == 2
