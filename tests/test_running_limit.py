"""A tenant's max_running_jobs on the real stack: an in-process worker on its own task queue,
whose model answers each call after a delay. A tenant limited to 2 running jobs submits 6: never
more than 2 hold a slot at once, the rest say `queued` (in the job and its events), they start in
submission order and all are delivered; a queued job cancelled ends cancelled, frees nothing,
and the rest still finish; another tenant's job is not queued behind them."""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from devstack.receiver import WebhookReceiver
from lodestone.db import tenant_session
from lodestone.settings import Settings
from schema.tables import Job
from tests.conftest import TenantCtx, _tenant
from tests.helpers import create_workflow, in_process_api, submit, wait_job, worker_api
from tests.standins.switchable_llm import SwitchableOpenAIStandIn

LATENCY = 2.0  # each LLM call's; one step a job
LIMIT = 2


@pytest.fixture(scope="module")
def slow_llm() -> Iterator[SwitchableOpenAIStandIn]:
    with SwitchableOpenAIStandIn(latency=LATENCY) as llm:
        yield llm


@pytest.fixture(scope="module")
def worker_settings(settings: Settings, slow_llm: SwitchableOpenAIStandIn) -> Settings:
    return settings.model_copy(
        update={"temporal_task_queue": f"running-{uuid.uuid4()}", "llm_base_url": slow_llm.base_url}
    )


@pytest.fixture(scope="module")
async def busy(settings: Settings, engine: Any) -> AsyncIterator[TenantCtx]:
    ctx = await _tenant(settings, engine, "Busy tenant")
    yield ctx
    await ctx.api.aclose()


@pytest.fixture(scope="module")
async def api(
    worker_settings: Settings, temporal: Any, engine: Any, busy: TenantCtx
) -> AsyncIterator[httpx.AsyncClient]:
    async with worker_api(worker_settings, temporal, engine, busy) as client:
        yield client


def one_step(url: str) -> dict[str, Any]:
    return {
        "key": f"slot-{uuid.uuid4().hex[:8]}",
        "input_schema": {"type": "object", "properties": {"company": {"type": "string"}}},
        "steps": [{"id": "write", "model": "ok-run", "inputs": {"c": "input.company"}, "instructions": "On {{ c }}."}],
        "template": "<p>{{ steps.write }}</p>",
        "outputs": ["html"],
        "delivery": [{"type": "webhook", "url": url}],
    }


async def rows(engine: Any, tenant_id: uuid.UUID, ids: list[str]) -> dict[str, Job]:
    async with tenant_session(engine, tenant_id) as s:
        found = (await s.exec(select(Job).where(col(Job.id).in_([uuid.UUID(i) for i in ids])))).all()
    return {str(j.id): j for j in found}


async def until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := await check()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        await asyncio.sleep(0.1)
    return found


async def statuses(api: httpx.AsyncClient, job_id: str) -> list[str]:
    """The job's status events, from GET /v1/jobs/{id}/events (a finished job's stream closes)."""
    resp = await api.get(f"/v1/jobs/{job_id}/events")
    assert resp.status_code == 200, resp.text
    out, event = [], None
    for line in resp.text.splitlines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event == "status":
            out.append(json.loads(line.split(":", 1)[1])["status"])
    return out


def most_at_once(spans: list[tuple[datetime, datetime]]) -> int:
    return max(sum(1 for s, e in spans if s <= at < e) for at, _ in spans)


async def test_a_tenant_runs_at_most_its_limit_the_rest_queue_in_order(
    api: httpx.AsyncClient, worker_settings: Settings, engine: Any, busy: TenantCtx, tenant_b: TenantCtx
) -> None:
    put = await api.put("/v1/tenant/limits", json={"max_running_jobs": LIMIT})
    assert put.status_code == 200, put.text
    with WebhookReceiver(busy.webhook_secret) as hook, WebhookReceiver(tenant_b.webhook_secret) as other_hook:
        body = one_step(hook.url)
        await create_workflow(api, body)
        ids: list[str] = []
        for n in range(6):  # each seen queued or running before the next, so arrival = submission order
            resp = await submit(api, body["key"], {"company": f"C{n}"})
            assert resp.status_code == 202, resp.text
            ids.append(str(resp.json()["job_id"]))

            async def arrived(job_id: str = ids[-1]) -> bool:
                return (await rows(engine, busy.id, [job_id]))[job_id].status != "pending"

            await until(arrived, 30, f"job {n} started")

        async def four_queued() -> bool:
            found = [(await api.get(f"/v1/jobs/{i}")).json()["status"] for i in ids]
            return found.count("queued") == 4 and found.count("processing") <= LIMIT

        await until(four_queued, 30, "4 jobs queued in the API")

        # Another tenant's job, on the same worker, is not queued behind them.
        async with in_process_api(worker_settings, _token(tenant_b)) as b_api:
            b_body = one_step(other_hook.url)
            await create_workflow(b_api, b_body)
            b_resp = await submit(b_api, b_body["key"])
            assert b_resp.status_code == 202, b_resp.text
            b_job = await wait_job(b_api, str(b_resp.json()["job_id"]), timeout=60)
        assert b_job["status"] == "delivered", b_job
        still_waiting = await rows(engine, busy.id, ids[-2:])
        assert all(j.slot_at is None for j in still_waiting.values()), "tenant B's job ran before A's last two queued"

        cancelled = ids[-1]  # queued last: it holds nothing
        resp = await api.post(f"/v1/jobs/{cancelled}/cancel")
        assert resp.status_code == 202, resp.text
        assert (await wait_job(api, cancelled, timeout=60))["status"] == "cancelled"

        done = [await wait_job(api, i, timeout=90) for i in ids[:-1]]
        assert [j["status"] for j in done] == ["delivered"] * 5, done

    found = await rows(engine, busy.id, ids)
    assert found[cancelled].slot_at is None
    ran = [found[i] for i in ids[:-1]]
    assert all(j.slot_at is not None for j in ran)
    spans = [(j.slot_at, j.updated_at) for j in ran]
    assert most_at_once(spans) == LIMIT, spans  # type: ignore[arg-type]  # slot_at checked above
    by_start = sorted(ran, key=lambda j: j.slot_at)  # type: ignore[arg-type, return-value]
    assert [str(j.id) for j in by_start] == ids[:-1], "not started in submission order"
    seen = await statuses(api, ids[4])
    assert seen.index("queued") < seen.index("processing") < seen.index("delivered"), seen
    assert (await statuses(api, cancelled))[-1] == "cancelled"


def _token(tenant: TenantCtx) -> str:
    return str(tenant.api.headers["authorization"]).removeprefix("Bearer ")
