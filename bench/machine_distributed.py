"""bench/state_machine.py's distributed-Map part: on the embedded stack, a Map reading a
10,000-item JSON upload (ItemReader), a Pass processor in MapBatchWorkflow children, results
to the store (ResultWriter): items per second from POST /v1/submissions to `succeeded`, and the
worker process's peak RSS (VmHWM) after the run; the histories of the job's workflow and of its
children (each run of their continue-as-new chains): events and bytes, and the runs."""

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
from bench_tenant import bench_tenant
from machine_stack import PORTS, err
from temporalio.api.enums.v1 import EventType

from devstack.processes import free_port
from devstack.stack import Stack
from lodestone.settings import Settings
from lodestone.temporal_client import connect

KEY = "bench-distributed-map"


def distributed_map() -> dict[str, Any]:
    add = {"Type": "Pass", "Parameters": {"n.$": "$.n", "double.$": "States.MathAdd($.n, $.n)"}, "End": True}
    processor = {"ProcessorConfig": {"Mode": "DISTRIBUTED"}, "StartAt": "Add", "States": {"Add": add}}
    reader = {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": "JSON"},
        "Parameters": {"Bucket": "lodestone", "Key.$": "$.upload"},
    }
    writer = {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "lodestone", "Prefix": "bench"}}
    each = {"Type": "Map", "ItemReader": reader, "ItemProcessor": processor, "MaxConcurrency": 80}
    return {
        "key": KEY,
        "kind": "state_machine",
        "state_machine": {"StartAt": "Each", "States": {"Each": {**each, "ResultWriter": writer, "End": True}}},
    }


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


async def histories(settings: Settings, job_id: str) -> dict[str, Any]:
    """The parent's history, and every run of every child's: events and bytes; the largest run."""
    client = await connect(settings)
    parent = (await client.get_workflow_handle(job_id).fetch_history()).events
    runs: list[tuple[int, int]] = []
    for e in parent:
        if e.event_type != EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
            continue
        child = e.child_workflow_execution_started_event_attributes.workflow_execution
        run_id: str | None = child.run_id
        while run_id:
            events = (await client.get_workflow_handle(child.workflow_id, run_id=run_id).fetch_history()).events
            runs.append((len(events), sum(x.ByteSize() for x in events)))
            last = events[-1]
            run_id = None
            if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    children = sum(1 for e in parent if e.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED)
    largest = max(runs, default=(0, 0), key=lambda r: r[1])
    return {
        "parent_history_events": len(parent),
        "parent_history_bytes": sum(e.ByteSize() for e in parent),
        "children": children,
        "child_runs": len(runs),
        "continued_as_new": len(runs) - children,
        "largest_child_run_events": max((n for n, _ in runs), default=0),
        "largest_child_run_bytes": largest[1],
    }


async def bench(settings: Settings, items: int, worker_pid: int) -> dict[str, Any]:
    tenant, token = await bench_tenant(settings)
    async with httpx.AsyncClient(
        base_url=settings.api_url, timeout=120, headers={"Authorization": f"Bearer {token}"}
    ) as api:
        (await api.post("/v1/workflows", json=distributed_map())).raise_for_status()
        body = json.dumps([{"n": i} for i in range(items)]).encode()
        upload = (await api.post("/v1/uploads", content=body)).raise_for_status().json()["upload_id"]
        rss_before = peak_rss_mib(worker_pid)
        err.print(f"distributed Map over {items} items")
        t0 = time.monotonic()
        resp = await api.post("/v1/submissions", json={"workflow_key": KEY, "input": {"upload": upload}})
        job_id = resp.raise_for_status().json()["job_id"]
        while (job := (await api.get(f"/v1/jobs/{job_id}")).json())["status"] not in ("succeeded", "failed"):
            await asyncio.sleep(0.1)
        seconds = time.monotonic() - t0
    if job["status"] != "succeeded":
        raise RuntimeError(f"the distributed Map failed: {job.get('error')}")
    return {
        "distributed_items": items,
        "distributed_seconds": round(seconds, 2),
        "distributed_items_per_s": round(items / seconds, 1),
        "worker_peak_rss_mib_before": rss_before,
        "worker_peak_rss_mib": peak_rss_mib(worker_pid),
        **await histories(settings, job_id),
    }


def run_distributed(data_dir: Path, items: int) -> dict[str, Any]:
    """Starts the embedded stack in data_dir, runs one distributed Map of `items`, stops it."""
    ports = {f"{name}_port": free_port() for name in PORTS}
    settings = Settings(
        _env_file=None, data_dir=data_dir, database_url=None, s3_endpoint=None, temporal_address=None,
        llm_base_url=None, **ports,
    )  # fmt: skip
    stack = Stack(settings, web_ui=False)
    try:
        stack.start_infra(err.print)
        stack.start_app(err.print)
        return asyncio.run(bench(settings, items, stack.group.pid("worker")))
    finally:
        stack.stop()
