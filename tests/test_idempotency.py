"""Idempotency-Key: the same key and body give the same job; another body gives 409; and
many callers with one key, on two API processes at once, get one job that runs once."""

import asyncio
import logging
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from sqlmodel import col, select

from devstack.keys import mint_token
from devstack.processes import ProcessGroup, free_port, wait_for_port
from devstack.stack import Stack
from lodestone.db import tenant_session
from lodestone.settings import Settings
from schema.tables import Job
from services.tenants import create_tenant
from tests.helpers import create_workflow, definition, submit


async def test_same_key_same_body_same_job(tenant_a):
    wf = await create_workflow(tenant_a.api, definition("http://127.0.0.1:9/hook"))
    key = uuid.uuid4().hex
    first = await submit(tenant_a.api, wf["key"], {"company": "Acme"}, key)
    second = await submit(tenant_a.api, wf["key"], {"company": "Acme"}, key)
    assert first.status_code == second.status_code == 202
    assert first.json()["job_id"] == second.json()["job_id"]
    conflict = await submit(tenant_a.api, wf["key"], {"company": "Other"}, key)
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "idempotency_conflict"
    fresh = await submit(tenant_a.api, wf["key"], {"company": "Acme"}, uuid.uuid4().hex)
    assert fresh.json()["job_id"] != first.json()["job_id"]


async def test_concurrent_twins_make_one_job(tenant_a):
    wf = await create_workflow(tenant_a.api, definition("http://127.0.0.1:9/hook"))
    key = uuid.uuid4().hex
    results = await asyncio.gather(*[submit(tenant_a.api, wf["key"], {"company": "Twin"}, key) for _ in range(8)])
    assert {r.status_code for r in results} == {202}
    assert len({r.json()["job_id"] for r in results}) == 1


async def test_keys_are_per_tenant(tenant_a, tenant_b):
    key = uuid.uuid4().hex
    wf_a = await create_workflow(tenant_a.api, definition("http://127.0.0.1:9/hook"))
    wf_b = await create_workflow(tenant_b.api, definition("http://127.0.0.1:9/hook"))
    a = await submit(tenant_a.api, wf_a["key"], {"company": "A"}, key)
    b = await submit(tenant_b.api, wf_b["key"], {"company": "B"}, key)
    assert a.status_code == b.status_code == 202
    assert a.json()["job_id"] != b.json()["job_id"]


# Two API processes on one database and one Temporal; TWINS concurrent POSTs with one key and
# body per round, while other submissions load the stack.
ROUNDS = int(os.environ.get("IDEMPOTENCY_ROUNDS", "20"))
log = logging.getLogger(__name__)
TWINS = 50
STAGGER = 0.002
BACKGROUND = int(os.environ.get("IDEMPOTENCY_BACKGROUND", "300"))  # another tenant's submissions meanwhile


@pytest.fixture(scope="module")
def second_api(stack: Stack, settings: Settings) -> Iterator[str]:
    port, group = free_port(), ProcessGroup()
    # The same stack as the session's API; its own port, the session API's token issuer.
    proc = group.start(
        "api-2",
        [sys.executable, "-m", "cli.main", "api"],
        log_path=stack.logs / "api-2.log",
        env={**stack.env(), "API_PORT": str(port), "AUTH_ISSUER": settings.issuer},
    )
    try:
        wait_for_port(settings.api_host, port, 60, proc)
        yield f"http://{settings.api_host}:{port}"
    finally:
        group.stop()


async def _tenant_clients(settings: Settings, engine, urls: list[str]) -> tuple[str, list[httpx.AsyncClient]]:  # type: ignore[no-untyped-def]
    tenant = await create_tenant(engine, f"idem-{uuid.uuid4().hex[:8]}")
    token = mint_token(
        settings.data_path,
        issuer=settings.issuer,
        audience=settings.auth_audience,
        tenant_id=str(tenant.id),
        roles=["admin"],
    )
    limits = httpx.Limits(max_connections=TWINS)
    return str(tenant.id), [
        httpx.AsyncClient(base_url=u, headers={"Authorization": f"Bearer {token}"}, timeout=60, limits=limits)
        for u in urls
    ]


def lean(key: str | None = None) -> dict:  # type: ignore[type-arg]
    """One offline step and no delivery: a job the worker finishes in moments, so the load
    this test makes does not outlive it."""
    full = definition("http://127.0.0.1:9/hook", key=key)
    return {**full, "steps": full["steps"][:1], "template": "<p>{{ input.company }}</p>", "delivery": []}


async def test_same_key_from_two_apis_under_load_is_one_job(settings, engine, temporal, second_api):
    urls = [settings.api_url, second_api]
    stop = asyncio.Event()
    background: list[int] = []

    async def load(api: httpx.AsyncClient, key: str) -> None:
        while not stop.is_set() and len(background) < BACKGROUND:
            resp = await submit(api, key, {"company": "Background"})
            background.append(resp.status_code)

    async def twin(api: httpx.AsyncClient, wf_key: str, key: str, i: int) -> httpx.Response:
        # Spread over a few tens of milliseconds: some twins race the first insert, some
        # arrive while the first request is committing or starting the workflow.
        await asyncio.sleep(i * STAGGER)
        return await submit(api, wf_key, {"company": "Twin"}, key)

    bg_tenant, bg = await _tenant_clients(settings, engine, urls)
    bg_wf = await create_workflow(bg[0], lean())
    loaders = [asyncio.create_task(load(bg[i % 2], bg_wf["key"])) for i in range(6)]
    rounds: list[tuple[str, str, str]] = []
    began = time.monotonic()
    try:
        for n in range(ROUNDS):
            tenant_id, apis = await _tenant_clients(settings, engine, urls)
            wf = await create_workflow(apis[0], lean())
            key = uuid.uuid4().hex
            answers = await asyncio.gather(*[twin(apis[i % 2], wf["key"], key, i) for i in range(TWINS)])
            # Every answer names one job, and that job exists.
            statuses = Counter(r.status_code for r in answers)
            errors = [r.text[:200] for r in answers if r.status_code != 202]
            assert set(statuses) == {202}, f"round {n}: {statuses}: {errors}"
            ids = {r.json()["job_id"] for r in answers}
            assert len(ids) == 1, f"round {n}: one key, {len(ids)} jobs: {ids}"
            job_id = ids.pop()
            rounds.append((tenant_id, wf["key"], job_id))
            for api in apis:
                assert (await api.get(f"/v1/jobs/{job_id}")).status_code == 200
                await api.aclose()
    finally:
        stop.set()
        await asyncio.gather(*loaders, return_exceptions=True)
        for api in bg:
            await api.aclose()
    log.info(
        "%d rounds of %d twins in %.1fs, %d background submissions (%s)",
        ROUNDS,
        TWINS,
        time.monotonic() - began,
        len(background),
        dict(Counter(background)),
    )
    assert len(background) >= min(BACKGROUND, ROUNDS), f"only {len(background)} background submissions"
    assert not [s for s in background if s >= 500], f"background 5xx: {sorted(set(background))}"
    # One job row per key; one workflow run per round's tenant; and that job runs to its end.
    deadline = time.monotonic() + 120
    for tenant_id, wf_key, job_id in rounds:
        async with tenant_session(engine, tenant_id) as s:
            rows = (await s.exec(select(Job.id).where(Job.workflow_key == wf_key))).all()
        assert [str(r) for r in rows] == [job_id], f"tenant {tenant_id}: job rows {rows}"
        handle = temporal.get_workflow_handle(job_id)
        while (runs := await temporal.count_workflows(f"TenantId = '{tenant_id}'")).count < 1:
            assert time.monotonic() < deadline, f"job {job_id} was never started"
            await asyncio.sleep(0.5)
        assert runs.count == 1, f"tenant {tenant_id}: {runs.count} workflow runs for one key"
        async with asyncio.timeout(max(1.0, deadline - time.monotonic())):
            await handle.result()
        async with tenant_session(engine, tenant_id) as s:
            assert (await s.get(Job, uuid.UUID(job_id))).status == "delivered"
    # The background jobs too, so this test's load ends with it.
    while True:
        async with tenant_session(engine, bg_tenant) as s:
            left = (await s.exec(select(Job.id).where(col(Job.status).not_in(["delivered", "failed"])))).all()
        if not left:
            break
        assert time.monotonic() < deadline, f"{len(left)} background jobs still running"
        await asyncio.sleep(0.5)
