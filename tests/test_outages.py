"""Outages answer as outages, and lose nothing, on a stack of this module's own (so stopping
Temporal or PostgreSQL does not disturb the session stack):

- Temporal stopped: a submission is still accepted, 202 `pending`, within the bound; once
  Temporal is back the worker's outbox starts it and it is delivered, with no client action.
- Temporal stopped: a route that must reach Temporal answers 503 with Retry-After within
  TEMPORAL_RPC_TIMEOUT_SECONDS, not after the SDK's ten seconds of retries.
- PostgreSQL stopped: POST /v1/submissions and GET /v1/jobs answer 503 `database_unavailable`
  with Retry-After, not 500; and the API serves again once it is back."""

import asyncio
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from devstack.keys import mint_token
from devstack.postgres import APP_ROLE, OWNER_ROLE, start_postgres
from devstack.processes import free_port
from devstack.receiver import WebhookReceiver
from devstack.temporal import start_temporal
from lodestone.db import make_engine
from lodestone.settings import Settings
from services.tenants import create_tenant
from tests.faults.stack import FaultStack
from tests.helpers import create_workflow, definition, submit, wait_job

BOUND = 1.5  # this stack's TEMPORAL_RPC_TIMEOUT_SECONDS
SLACK = 3.5  # a loaded machine's scheduling, on top of the bound
DB_CONNECT_TIMEOUT = 5.0  # DB_CONNECT_TIMEOUT_SECONDS, the default
pytestmark = pytest.mark.timeout(600)
log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def outage_stack() -> Iterator[FaultStack]:
    with tempfile.TemporaryDirectory(prefix="lodestone-outages-") as tmp:
        pg = free_port()
        settings = Settings(
            _env_file=None,
            data_dir=Path(tmp),
            postgres_port=pg,
            api_port=free_port(),
            temporal_port=free_port(),
            temporal_http_port=free_port(),
            temporal_metrics_port=free_port(),
            temporal_ui_port=free_port(),
            worker_metrics_port=free_port(),
            database_url=f"postgresql+asyncpg://{APP_ROLE}@127.0.0.1:{pg}/lodestone",
            database_admin_url=f"postgresql+asyncpg://{OWNER_ROLE}@127.0.0.1:{pg}/lodestone",
            s3_endpoint=None,
            temporal_address=None,
            outbound_allow_cidrs=["127.0.0.1/32"],
        )
        stack = FaultStack(settings)
        stack.stack.extra_env.update(
            {
                "TEMPORAL_RPC_TIMEOUT_SECONDS": str(BOUND),
                "OUTBOX_START_AFTER_SECONDS": "2",
                "OUTBOX_INTERVAL_SECONDS": "1",
            }
        )
        try:
            stack.start()
            wait_for_worker(stack)
            yield stack
        finally:
            stack.stop()


def wait_for_worker(stack: FaultStack, timeout: float = 120) -> None:
    """Until the worker polls: one that starts while Temporal is down exits, as it should."""
    log, deadline = stack.stack.logs / "worker.log", time.monotonic() + timeout
    while "worker polling task queue" not in (log.read_text() if log.exists() else ""):
        stack.check()
        assert time.monotonic() < deadline, f"the worker did not start polling in {timeout:.0f}s"
        time.sleep(0.2)


class Tenant:
    def __init__(self, api: httpx.AsyncClient, webhook_secret: str) -> None:
        self.api, self.webhook_secret = api, webhook_secret


@pytest.fixture
async def tenant(outage_stack: FaultStack) -> AsyncIterator[Tenant]:
    s = outage_stack.settings
    engine = make_engine(s.app_database_url, 1)
    try:
        row = await create_tenant(engine, "Outages")
    finally:
        await engine.dispose()
    token = mint_token(s.data_path, issuer=s.issuer, audience=s.auth_audience, tenant_id=str(row.id), roles=["admin"])
    async with httpx.AsyncClient(base_url=s.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as api:
        yield Tenant(api, row.webhook_secret)


def restart_temporal(stack: FaultStack) -> None:
    s = stack.settings
    start_temporal(
        stack.stack.group,
        s.data_path / "temporal",
        s.temporal_port,
        None,
        s.temporal_http_port,
        s.temporal_metrics_port,
        log_dir=stack.stack.logs,
    )


async def test_temporal_down_submission_is_accepted_and_runs_when_it_is_back(outage_stack, tenant):
    with WebhookReceiver(tenant.webhook_secret) as hook:
        wf = await create_workflow(tenant.api, definition(hook.url))
        # The API's client has reached Temporal before it goes: the case the SDK retries for ten seconds.
        assert (await tenant.api.get("/v1/schedules")).status_code == 200
        outage_stack.stack.group.stop()  # the Temporal dev server, alone (PostgreSQL is in a group of its own)
        try:
            # A route that has to reach Temporal answers as an outage, within the bound.
            began = time.monotonic()
            sched = await tenant.api.get("/v1/schedules")
            took = time.monotonic() - began
            log.info("Temporal down: GET /v1/schedules %d in %.2fs", sched.status_code, took)
            assert sched.status_code == 503, sched.text
            assert took < BOUND + SLACK, f"503 took {took:.1f}s"
            assert sched.headers["content-type"] == "application/problem+json"
            assert sched.json()["code"] == "temporal_unavailable" and sched.headers.get("retry-after")
            # A submission is accepted all the same: its row is durable.
            began = time.monotonic()
            resp = await submit(tenant.api, wf["key"], {"company": "Outage"}, "while-temporal-is-down")
            took = time.monotonic() - began
            log.info("Temporal down: POST /v1/submissions %d in %.2fs", resp.status_code, took)
            assert resp.status_code == 202, resp.text
            assert resp.json()["status"] == "pending"
            assert took < BOUND + SLACK, f"202 took {took:.1f}s"
            job_id = resp.json()["job_id"]
            # The client's retry gets the same job, still pending, and no error.
            again = await submit(tenant.api, wf["key"], {"company": "Outage"}, "while-temporal-is-down")
            assert again.status_code == 202 and again.json()["job_id"] == job_id, again.text
            job = (await tenant.api.get(f"/v1/jobs/{job_id}")).json()
            assert job["status"] == "pending", job
            await asyncio.sleep(4)  # the outbox's own tries fail meanwhile, and are tried again
        finally:
            await asyncio.to_thread(restart_temporal, outage_stack)
        # No client action from here: the worker's outbox starts the job.
        done = await wait_job(tenant.api, job_id, timeout=180)
        assert done["status"] == "delivered", done
        assert hook.wait_for_success(10) is not None


async def test_postgres_down_answers_503_with_retry_after(outage_stack, tenant):
    wf = await create_workflow(tenant.api, definition("http://127.0.0.1:9/hook"))
    s = outage_stack.settings
    outage_stack.pg.stop()
    try:
        for method, path, body in (
            ("POST", "/v1/submissions", {"workflow_key": wf["key"], "input": {"company": "A"}}),
            ("GET", "/v1/jobs", None),
            ("GET", f"/v1/workflows/{wf['key']}", None),
        ):
            began = time.monotonic()
            resp = await tenant.api.request(method, path, json=body)
            took = time.monotonic() - began
            log.info("PostgreSQL down: %s %s %d in %.2fs", method, path, resp.status_code, took)
            assert resp.status_code == 503, f"{method} {path}: {resp.status_code} {resp.text}"
            assert resp.headers["content-type"] == "application/problem+json"
            assert resp.json()["code"] == "database_unavailable", resp.text
            assert int(resp.headers["retry-after"]) > 0
            assert took < DB_CONNECT_TIMEOUT + SLACK, f"{method} {path} took {took:.1f}s"
    finally:
        await asyncio.to_thread(start_postgres, outage_stack.pg, s.data_path, s.postgres_port)
    back = await tenant.api.get("/v1/jobs")
    assert back.status_code == 200, back.text


async def test_the_first_requests_after_a_postgres_restart_are_served(outage_stack, tenant):
    """No connection is pinged before use: the pooled connections a restart closed are found
    closed by each transaction's first statement, dropped, and the request served on a new one."""
    wf = await create_workflow(tenant.api, definition("http://127.0.0.1:9/hook"))
    job_id = (await submit(tenant.api, wf["key"], {"company": "Before"})).json()["job_id"]
    # Several pooled connections, each used before the restart.
    warm = await asyncio.gather(*(tenant.api.get(f"/v1/jobs/{job_id}") for _ in range(6)))
    assert all(r.status_code == 200 for r in warm), [r.text for r in warm]
    s = outage_stack.settings
    outage_stack.pg.stop()
    await asyncio.to_thread(start_postgres, outage_stack.pg, s.data_path, s.postgres_port)
    first = await submit(tenant.api, wf["key"], {"company": "After"}, "after-the-restart")
    assert first.status_code == 202, first.text
    after = await asyncio.gather(
        *(tenant.api.get(f"/v1/jobs/{job_id}") for _ in range(6)),
        *(submit(tenant.api, wf["key"], {"company": f"After {i}"}) for i in range(3)),
    )
    assert [r.status_code for r in after] == [200] * 6 + [202] * 3, [r.text for r in after]
