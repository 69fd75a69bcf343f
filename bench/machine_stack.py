"""bench/state_machine.py's second part: on the embedded stack, a 3-Task machine (http Tasks
to a local service stand-in) from POST /v1/submissions to `succeeded`, one at a time; and a
callback Task's wait: from `POST /v1/task-tokens/{token}/success` to the next state's `entered`
time in the job's path (the workflow's clock when it ran that state)."""

import asyncio
import statistics
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from bench_tenant import bench_tenant
from rich.console import Console
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from devstack.processes import free_port
from devstack.stack import Stack
from devstack.task_service import TaskService
from lodestone.settings import Settings

PORTS = ("postgres", "temporal", "temporal_http", "temporal_metrics", "temporal_ui", "api", "worker_metrics")
err = Console(stderr=True)


async def workflow_task_ms(client: Client, workflow_id: str) -> float:
    """The sum of the run's workflow tasks, each from started to completed, in ms."""
    total, started = 0.0, None
    async for e in client.get_workflow_handle(workflow_id).fetch_history_events():
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            started = e.event_time.ToDatetime()
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and started is not None:
            total += (e.event_time.ToDatetime() - started).total_seconds() * 1000
            started = None
    return total


def ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 2)


async def sequential(n: int, one: Any) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.monotonic()
        await one(i)
        out.append(time.monotonic() - t0)
    return out


def three_tasks(service_url: str) -> dict[str, Any]:
    def task(name: str, nxt: str | None) -> dict[str, Any]:
        state: dict[str, Any] = {"Type": "Task", "Resource": f"arn:aws:lambda:us-east-1:1:function:{name}"}
        state["ResultPath"] = f"$.{name.lower()}"
        return state | ({"Next": nxt} if nxt else {"End": True})

    return {
        "key": "bench-three-tasks",
        "kind": "state_machine",
        "state_machine": {
            "StartAt": "Fetch",
            "States": {
                "Fetch": task("Fetch", "Enrich"),
                "Enrich": task("Enrich", "Store"),
                "Store": task("Store", None),
            },
        },
        "resources": [{"function": "*", "http": {"url": f"{service_url}/echo"}}],
    }


def callback_machine(service_url: str) -> dict[str, Any]:
    ask = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": "Ask", "Payload": {"token.$": "$$.Task.Token", "i.$": "$.i"}},
        "ResultPath": "$.answer",
        "Next": "After",
    }
    return {
        "key": "bench-callback",
        "kind": "state_machine",
        "state_machine": {"StartAt": "Ask", "States": {"Ask": ask, "After": {"Type": "Pass", "End": True}}},
        "resources": [{"function": "Ask", "http": {"url": f"{service_url}/ask"}}],
    }


async def finished(api: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    while (job := (await api.get(f"/v1/jobs/{job_id}")).json())["status"] not in ("succeeded", "failed"):
        await asyncio.sleep(0.02)
    if job["status"] != "succeeded":
        raise RuntimeError(f"the bench machine failed: {job.get('error')}")
    return job  # type: ignore[no-any-return]


async def token_latency(api: httpx.AsyncClient, service: TaskService, n: int) -> list[float]:
    """Seconds from the success POST to the next state's entry, one run at a time."""
    (await api.post("/v1/workflows", json=callback_machine(service.url))).raise_for_status()
    out = []
    for i in range(n):
        body = {"workflow_key": "bench-callback", "input": {"i": i}}
        resp = await api.post("/v1/submissions", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
        resp.raise_for_status()
        while not (sent := [c.body for c in service.calls_to("ask") if c.body.get("i") == i]):
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # the workflow is waiting on the signal by now, not still sending
        posted = time.time()
        (await api.post(f"/v1/task-tokens/{sent[0]['token']}/success", json={"output": {"ok": i}})).raise_for_status()
        job = await finished(api, resp.json()["job_id"])
        after = next(e for e in job["path"] if e["kind"] == "entered" and e["state"] == "After")
        out.append(datetime.fromisoformat(after["at"]).timestamp() - posted)
    return out


async def bench_stack(settings: Settings, n: int, service: TaskService) -> dict[str, Any]:
    tenant, token = await bench_tenant(settings)
    service.secret = tenant.webhook_secret
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=settings.api_url, timeout=60, headers=headers) as api:
        (await api.post("/v1/workflows", json=three_tasks(service.url))).raise_for_status()

        async def one(i: int) -> None:
            body = {"workflow_key": "bench-three-tasks", "input": {"i": i}}
            resp = await api.post("/v1/submissions", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
            resp.raise_for_status()
            job_id = resp.json()["job_id"]
            while (job := (await api.get(f"/v1/jobs/{job_id}")).json())["status"] not in ("succeeded", "failed"):
                await asyncio.sleep(0.02)
            if job["status"] != "succeeded":
                raise RuntimeError(f"the 3-Task machine failed: {job.get('error')}")

        await sequential(3, one)
        err.print(f"3-Task machine, POST to succeeded, x{n}")
        lat = await sequential(n, one)
        err.print(f"callback Task, POST success to the next state, x{n}")
        tokens = await token_latency(api, service, n)
    return {
        "three_task_ms_p50": ms(lat),
        "three_task_ms_max": round(max(lat) * 1000, 1),
        "token_to_next_state_ms_p50": ms(tokens),
        "token_to_next_state_ms_max": round(max(tokens) * 1000, 1),
    }


def run_on_stack(data_dir: Path, n: int) -> dict[str, Any]:
    """Starts the embedded stack in data_dir with a service stand-in, measures n runs, stops it."""
    ports = {f"{name}_port": free_port() for name in PORTS}
    settings = Settings(
        _env_file=None, data_dir=data_dir, database_url=None, s3_endpoint=None, temporal_address=None,
        llm_base_url=None, **ports,
    )  # fmt: skip
    with TaskService(None, {"echo": lambda body: {"echo": body}, "ask": lambda body: {"queued": True}}) as service:
        stack = Stack(settings, web_ui=False, receiver_ports=[service.port])
        try:
            stack.start_infra(err.print)
            stack.start_app(err.print)
            return asyncio.run(bench_stack(settings, n, service))
        finally:
            stack.stop()
