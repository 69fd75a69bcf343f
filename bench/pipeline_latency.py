"""P3, HTML only: one 3-step offline pipeline at a time on an otherwise idle embedded stack,
from POST /v1/submissions to its signed webhook received; the workflow tasks and activities
each run took (from its history); and the floor under it: a workflow with no activities,
started and run to its result on the same Temporal server by an in-process worker.

Progress goes to stderr; a table and then one JSON line (the last) go to stdout."""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from temporalio import workflow

# Passed through, so the sandbox never re-imports them for the floor's workflow.
with workflow.unsafe.imports_passed_through():
    import httpx
    from bench_tenant import bench_tenant
    from pipeline import PORTS, Arrivals, definition, stats
    from rich.console import Console
    from rich.table import Table
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import Client
    from temporalio.worker import Worker
    from trivial_worker import NoopWorkflow

    from devstack.processes import free_port
    from devstack.receiver import WebhookReceiver
    from devstack.stack import Stack
    from lodestone.settings import Settings

P50_MS, P99_MS = 150.0, 400.0  # P3, HTML only
err = Console(stderr=True)


async def submit(api: httpx.AsyncClient, key: str, i: int) -> str:
    resp = await api.post(
        "/v1/submissions",
        json={"workflow_key": key, "input": {"company": f"Acme {i}"}},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    resp.raise_for_status()
    return str(resp.json()["job_id"])


async def history_counts(client: Client, job_id: str) -> tuple[int, float]:
    """The run's workflow tasks, and the ms its activities ran (started to completed)."""
    tasks, active, started = 0, 0.0, {}
    async for e in client.get_workflow_handle(job_id).fetch_history_events():
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            tasks += 1
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started[e.activity_task_started_event_attributes.scheduled_event_id] = e.event_time.ToDatetime()
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            done = e.activity_task_completed_event_attributes.scheduled_event_id
            active += (e.event_time.ToDatetime() - started[done]).total_seconds() * 1000
    return tasks, active


async def pipelines(
    client: Client, api: httpx.AsyncClient, key: str, arrivals: Arrivals, args: argparse.Namespace
) -> dict[str, Any]:
    latencies, tasks, active = [], [], []
    for i in range(args.warmup + args.n):
        t0 = time.monotonic()
        job_id = await submit(api, key, i)
        while job_id not in arrivals.at:
            if time.monotonic() - t0 > args.timeout:
                raise RuntimeError(f"job {job_id} not delivered after {args.timeout:.0f}s")
            await asyncio.sleep(0.002)
        await client.get_workflow_handle(job_id).result()  # its last workflow task follows the webhook
        if i >= args.warmup:
            latencies.append(arrivals.at[job_id] - t0)
            n_tasks, ms = await history_counts(client, job_id)
            tasks.append(n_tasks)
            active.append(ms)
    out = stats(latencies, sum(latencies))
    out["workflow_tasks"] = statistics.median(tasks)
    out["activity_ms_p50"] = round(statistics.median(active), 1)
    return out


async def floor(client: Client, args: argparse.Namespace) -> dict[str, Any]:
    queue = f"bench-floor-{uuid.uuid4().hex[:8]}"
    latencies = []
    async with Worker(client, task_queue=queue, workflows=[NoopWorkflow]):
        for i in range(args.warmup + args.n):
            t0 = time.monotonic()
            await client.execute_workflow(NoopWorkflow.run, id=f"{queue}-{i}", task_queue=queue)
            if i >= args.warmup:
                latencies.append(time.monotonic() - t0)
    return stats(latencies, sum(latencies))


async def bench(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"config": {k: v for k, v in vars(args).items() if k != "keep"}}
    tenant, token = await bench_tenant(settings, "Bench latency")
    client = await Client.connect(settings.temporal_target, namespace=settings.temporal_namespace)
    arrivals = Arrivals()
    with WebhookReceiver(tenant.webhook_secret) as receiver:
        receiver.received = arrivals
        async with httpx.AsyncClient(
            base_url=settings.api_url, timeout=60, headers={"Authorization": f"Bearer {token}"}
        ) as api:
            resp = await api.post("/v1/workflows", json=definition(receiver.url))
            resp.raise_for_status()
            out["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
            err.print(f"{args.n} pipelines one at a time, POST to signed webhook received")
            out["pipeline"] = await pipelines(client, api, resp.json()["key"], arrivals, args)
    err.print(f"{args.n} workflows with no activity, start to result")
    out["floor"] = await floor(client, args)
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    p = out["pipeline"]
    out["p3_met"] = p["p50_ms"] <= P50_MS and p["p99_ms"] <= P99_MS
    return out


def report(r: dict[str, Any]) -> None:
    table = Table(title=f"Pipeline latency, one at a time ({os.cpu_count()} cores)")
    for col in ("measure", "count", "p50 ms", "p99 ms", "workflow tasks", "activities ms (p50)"):
        table.add_column(col, justify="left" if col == "measure" else "right")
    p, f = r["pipeline"], r["floor"]
    table.add_row(
        "3-step HTML pipeline, POST to webhook",
        str(p["count"]),
        f"{p['p50_ms']:.1f}",
        f"{p['p99_ms']:.1f}",
        f"{p['workflow_tasks']:g}",
        f"{p['activity_ms_p50']:.1f}",
    )
    table.add_row(
        "workflow with no activity, start to result",
        str(f["count"]),
        f"{f['p50_ms']:.1f}",
        f"{f['p99_ms']:.1f}",
        "1",
        "0",
    )
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    verdict = "met" if r["p3_met"] else "not met"
    load = ", ".join(str(x) for x in r["load_average"])
    print(
        f"P3 HTML only: p50 {p['p50_ms']:.1f} ms (target <= {P50_MS:g}), p99 {p['p99_ms']:.1f} ms "
        f"(target <= {P99_MS:g}): {verdict}; floor p50 {f['p50_ms']:.1f} ms; load average {load}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50, help="pipelines, and floor workflows, measured")
    parser.add_argument("--warmup", type=int, default=5, help="run first and not measured")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for one delivery")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (logs) afterwards")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lodestone-bench-", ignore_cleanup_errors=True) as tmp:
        data_dir = Path(tempfile.mkdtemp(prefix="lodestone-bench-")) if args.keep else Path(tmp)
        settings = Settings(
            _env_file=None,
            data_dir=data_dir,
            database_url=None,
            s3_endpoint=None,
            temporal_address=None,
            llm_base_url=None,
            outbound_allow_cidrs=["127.0.0.1/32"],  # the webhook receiver
            **{f"{name}_port": free_port() for name in PORTS},
        )
        stack = Stack(settings, web_ui=False)
        err.print(f"data dir {data_dir}")
        try:
            stack.start_infra(err.print)
            stack.start_app(err.print)
            result = asyncio.run(bench(settings, args))
        finally:
            err.print("stopping the stack")
            stack.stop()
    report(result)
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
