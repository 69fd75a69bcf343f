"""Shared test helpers: definitions, submitting, and waiting for a job to settle."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import psutil
from sqlmodel import select
from temporalio import activity

from activities.running_slots import SlotAnswer, SlotRef
from api.app import create_app
from lodestone.db import tenant_session
from schema.statuses import TERMINAL
from schema.tables import Delivery, DeliveryAttempt, WorkflowDefinition


@activity.defn(name="claim_running_slot")
async def slot_granted(ref: SlotRef) -> SlotAnswer:
    """The running-slot claim for a worker of fake activities: always granted."""
    return SlotAnswer(True)


def definition(
    webhook_url: str, *, key: str | None = None, model: str = "offline", outputs: list[str] | None = None
) -> dict[str, Any]:
    """research -> (angles, outline in parallel) -> write."""
    return {
        "key": key or f"wf-{uuid.uuid4().hex[:10]}",
        "input_schema": {"type": "object", "required": ["company"], "properties": {"company": {"type": "string"}}},
        "steps": [
            {
                "id": "research",
                "model": model,
                "inputs": {"company": "input.company"},
                "instructions": "Research {{ company }}.",
            },
            {"id": "angles", "model": model, "inputs": {"r": "steps.research"}, "instructions": "Angles from: {{ r }}"},
            {
                "id": "outline",
                "model": model,
                "inputs": {"r": "steps.research"},
                "instructions": "Outline from: {{ r }}",
            },
            {
                "id": "write",
                "model": model,
                "inputs": {"a": "steps.angles", "o": "steps.outline"},
                "instructions": "Write using {{ a }} and {{ o }}.",
            },
        ],
        "template": "<html><body><h1>{{ input.company }}</h1>{{ steps.write | paragraphs }}</body></html>",
        "outputs": outputs or ["html"],
        "delivery": [{"type": "webhook", "url": webhook_url}],
    }


async def create_workflow(api: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    resp = await api.post("/v1/workflows", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def store_unchecked(engine: Any, tenant_id: uuid.UUID, body: dict[str, Any]) -> dict[str, Any]:
    """Store a definition as it is, past POST /v1/workflows' run-time checks: one stored before
    those checks (or before OUTBOUND_ALLOW_CIDRS was narrowed), whose job meets the refusal
    when it runs."""
    async with tenant_session(engine, tenant_id) as session:
        session.add(WorkflowDefinition(tenant_id=tenant_id, key=body["key"], version=1, definition=body))
    return body


async def submit(
    api: httpx.AsyncClient, key: str, inp: dict[str, Any] | None = None, idempotency_key: str | None = None
) -> httpx.Response:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return await api.post(
        "/v1/submissions", json={"workflow_key": key, "input": inp or {"company": "Acme"}}, headers=headers
    )


async def wait_job(api: httpx.AsyncClient, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        resp = await api.get(f"/v1/jobs/{job_id}")
        assert resp.status_code == 200, resp.text
        job = resp.json()
        if job["status"] in TERMINAL:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s: {job}")
        await asyncio.sleep(0.2)


@asynccontextmanager
async def in_process_api(settings, token: str | None = None, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    """The API in this process, on the session stack's database and issuer, with some
    settings changed; `token` is sent as the bearer when given."""
    app = create_app(settings.model_copy(update={"auth_issuer": settings.issuer, **overrides}))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api.test", timeout=30, headers=headers
        ) as http,
    ):
        yield http


@asynccontextmanager
async def worker_api(settings, temporal, engine, tenant) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    """The API in this process as `tenant`'s admin, its jobs run by a worker in this process
    (the real workflows and activities) on `settings`' task queue, with the session's
    PostgreSQL and Temporal."""
    from lodestone.llm import RoutingLLM
    from lodestone.netguard import guarded_client
    from lodestone.secrets import make_secrets
    from lodestone.settings import secret_env
    from lodestone.storage import make_store
    from worker import WorkerDeps, build_worker

    s = settings
    deps = WorkerDeps(
        s, make_store(s), RoutingLLM(s), guarded_client(s.outbound_allow_cidrs), make_secrets(s, secret_env())
    )
    token = tenant.api.headers["authorization"].removeprefix("Bearer ")
    try:
        async with build_worker(temporal, engine, deps, s.temporal_task_queue), in_process_api(s, token) as client:
            yield client
    finally:
        await deps.http.aclose()


async def delivery_attempts(
    engine: Any, tenant_id: uuid.UUID | str, job_id: str
) -> list[tuple[Delivery, list[int | None]]]:
    """Each of the job's delivery targets, in target order, with its attempts' status codes in order."""
    async with tenant_session(engine, tenant_id) as s:
        rows = (
            await s.exec(select(Delivery).where(Delivery.job_id == uuid.UUID(job_id)).order_by(Delivery.target_index))
        ).all()
        out = []
        for row in rows:
            tries = (
                await s.exec(
                    select(DeliveryAttempt)
                    .where(DeliveryAttempt.delivery_id == row.id)
                    .order_by(DeliveryAttempt.attempt)
                )
            ).all()
            out.append((row, [t.status_code for t in tries]))
    return out


def cmdline(p: psutil.Process) -> str:
    """A process's command line; empty for one that ended or is a zombie (a short-lived child
    such as the `ldconfig` that ctypes' find_library runs)."""
    try:
        return " ".join(p.cmdline())
    except psutil.NoSuchProcess:  # ZombieProcess too
        return ""
