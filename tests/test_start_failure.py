"""A workflow start that fails after the job row is committed keeps the job: the API answers
202 `pending`, and the worker's outbox starts the job later, by itself."""

import time
import uuid

from sqlmodel import func, select

from devstack.processes import free_port
from devstack.receiver import WebhookReceiver
from lodestone.db import tenant_session
from schema.tables import IdempotencyKey, Job
from tests.helpers import create_workflow, definition, in_process_api, wait_job


async def test_failed_start_keeps_the_job_and_the_outbox_starts_it(settings, tenant_a, engine):
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        wf = await create_workflow(tenant_a.api, definition(hook.url))
        body = {"workflow_key": wf["key"], "input": {"company": "A"}}
        key = f"start-fails-{uuid.uuid4().hex}"
        # The same database and issuer, but a Temporal frontend that is not there.
        async with in_process_api(
            settings,
            tenant_a.api.headers["authorization"].removeprefix("Bearer "),
            temporal_address=f"127.0.0.1:{free_port()}",
        ) as api:
            began = time.monotonic()
            resp = await api.post("/v1/submissions", json=body, headers={"Idempotency-Key": key})
            took = time.monotonic() - began
            assert resp.status_code == 202, resp.text
            assert resp.json()["status"] == "pending"
            assert took < settings.temporal_rpc_timeout_seconds + 5, f"took {took:.1f}s"
            # A retry while Temporal is still out of reach: the same job, no error.
            again = await api.post("/v1/submissions", json=body, headers={"Idempotency-Key": key})
            assert again.status_code == 202 and again.json()["job_id"] == resp.json()["job_id"], again.text
        job_id = uuid.UUID(resp.json()["job_id"])
        async with tenant_session(engine, tenant_a.id) as s:
            assert (await s.exec(select(func.count()).select_from(Job).where(Job.workflow_key == wf["key"]))).one() == 1
            assert (await s.get(IdempotencyKey, (tenant_a.id, key))).job_id == job_id
        # Nobody retries: the session stack's worker finds the pending job and starts it.
        done = await wait_job(tenant_a.api, str(job_id), timeout=120)
        assert done["status"] == "delivered", done
        assert hook.wait_for_success(10) is not None
        async with tenant_session(engine, tenant_a.id) as s:
            assert (await s.get(Job, job_id)).workflow_started_at is not None
        # The same key once Temporal is back: still that one job.
        ok = await tenant_a.api.post("/v1/submissions", json=body, headers={"Idempotency-Key": key})
        assert ok.status_code == 202 and ok.json()["job_id"] == str(job_id), ok.text
