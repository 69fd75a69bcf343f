"""Lodestone against raw Temporal, on one embedded stack and one dev server: (1) P1, with
the API up and no worker yet: client.start_workflow vs POST /v1/submissions (and the
in-process floor), then POSTs paced at half the raw rate (bench/submit_rate.py); (2) with the
worker started and those jobs drained: a 3-step offline pipeline from POST to its webhook;
(3) the pipeline's activities/s vs a one-activity hello-world workflow on an in-process worker.

Progress goes to stderr; a table, the P1 lines and then one JSON line (the last) go to stdout."""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from temporalio import workflow

# Passed through, so the sandbox never re-imports them for the hello workflow (bench/hello.py).
with workflow.unsafe.imports_passed_through():
    import httpx
    from bench_tenant import bench_tenant
    from hello import HelloWorkflow, say_hello
    from rich.console import Console
    from rich.table import Table
    from submit_rate import measure, post, targets
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import Client
    from temporalio.worker import Worker

    from devstack.processes import free_port, wait_for_port
    from devstack.receiver import Received, WebhookReceiver
    from devstack.stack import Stack
    from lodestone.settings import Settings

APP = [sys.executable, "-m", "cli.main"]
PORTS = ("postgres", "temporal", "temporal_http", "temporal_metrics", "temporal_ui", "api", "worker_metrics")
STEPS = [("research", "input.company"), ("outline", "steps.research"), ("write", "steps.outline")]
err = Console(stderr=True)


def definition(webhook_url: str) -> dict[str, Any]:
    """research -> outline -> write, offline model, html only, one webhook."""
    return {
        "key": f"bench-{uuid.uuid4().hex[:8]}",
        "input_schema": {"type": "object", "required": ["company"], "properties": {"company": {"type": "string"}}},
        "steps": [
            {"id": step, "model": "offline", "inputs": {"x": source}, "instructions": step + ": {{ x }}"}
            for step, source in STEPS
        ],
        "template": "<html><body><h1>{{ input.company }}</h1>{{ steps.write | paragraphs }}</body></html>",
        "outputs": ["html"],
        "delivery": [{"type": "webhook", "url": webhook_url}],
    }


class Arrivals(list[Received]):
    """Stands in for WebhookReceiver.received: stamps each successful webhook as it arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.at: dict[str, float] = {}

    def append(self, item: Received) -> None:  # called under the receiver's lock
        if 200 <= item.status < 300:
            self.at.setdefault(json.loads(item.body)["data"]["job_id"], time.monotonic())
        super().append(item)


def stats(latencies: list[float], wall: float) -> dict[str, float]:
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "count": len(latencies),
        "per_s": round(len(latencies) / wall, 2),
        "p50_ms": round(cuts[49] * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
    }


async def timed(n: int, concurrency: int, call: Callable[[int], Awaitable[Any]]) -> tuple[list[float], float]:
    """Runs call(0..n-1), at most `concurrency` at once: per-call latencies and the wall time."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(i: int) -> None:
        async with gate:
            t0 = time.monotonic()
            await call(i)
            latencies.append(time.monotonic() - t0)

    start = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    return latencies, time.monotonic() - start


async def wait_arrivals(arrivals: Arrivals, job_ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (missing := [j for j in job_ids if j not in arrivals.at]) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if missing:  # a failed job never calls back: the caller reports on what did arrive
        err.print(f"[red]{len(missing)} of {len(job_ids)} jobs not delivered after {timeout:.0f}s[/red]")


def start_api(stack: Stack) -> None:
    """The API alone (Stack.start_app starts the worker with it): no worker polls yet."""
    api = stack.group.start("api", [*APP, "api"], log_path=stack.logs / "api.log", env=stack.env())
    wait_for_port(stack.settings.api_host, stack.settings.api_port, 60, api)


def start_worker(stack: Stack) -> None:
    stack.group.start("worker", [*APP, "worker"], log_path=stack.logs / "worker.log", env=stack.env())


async def bench_pipelines(
    api: httpx.AsyncClient, key: str, arrivals: Arrivals, args: argparse.Namespace
) -> tuple[dict[str, Any], list[str]]:
    posted: dict[str, float] = {}

    async def one(i: int) -> None:
        t0 = time.monotonic()
        posted[await post(api, key, i)] = t0

    err.print(f"{args.pipelines} pipelines, POST to signed webhook received")
    await timed(args.pipelines, args.concurrency, one)
    await wait_arrivals(arrivals, list(posted), args.timeout)
    if len(done := [j for j in posted if j in arrivals.at]) < 2:
        raise RuntimeError("fewer than 2 pipelines delivered: see the worker log under the data dir (--keep)")
    wall = max(arrivals.at[j] for j in done) - min(posted.values())
    return stats([arrivals.at[j] - posted[j] for j in done], wall), done


async def bench_hello(client: Client, args: argparse.Namespace, run: str) -> dict[str, Any]:
    queue = f"bench-hello-{run}"
    async with Worker(client, task_queue=queue, workflows=[HelloWorkflow], activities=[say_hello]):
        await client.execute_workflow(HelloWorkflow.run, "warm-up", id=f"hello-warm-{run}", task_queue=queue)
        gate = asyncio.Semaphore(args.concurrency)
        latencies: list[float] = []

        async def one(i: int) -> float:
            async with gate:
                t0 = time.monotonic()
                handle = await client.start_workflow(
                    HelloWorkflow.run, f"n{i}", id=f"hello-{run}-{i}", task_queue=queue
                )
            await handle.result()
            latencies.append(time.monotonic() - t0)
            return time.monotonic()

        err.print(f"hello-world x{args.n} on an in-process worker")
        start = time.monotonic()
        ends = await asyncio.gather(*(one(i) for i in range(args.n)))
    return stats(latencies, max(ends) - start)


async def bench(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    settings = stack.settings
    run, out = uuid.uuid4().hex[:8], {"config": {k: v for k, v in vars(args).items() if k != "keep"}}
    tenant, token = await bench_tenant(settings)
    client = await Client.connect(settings.temporal_target, namespace=settings.temporal_namespace)
    arrivals = Arrivals()
    with WebhookReceiver(tenant.webhook_secret) as receiver:
        receiver.received = arrivals
        async with httpx.AsyncClient(
            base_url=settings.api_url, timeout=60, headers={"Authorization": f"Bearer {token}"}
        ) as api:
            resp = await api.post("/v1/workflows", json=definition(receiver.url))
            resp.raise_for_status()
            key = resp.json()["key"]
            out["p1"], phase1_jobs = await measure(
                settings, client, api, key, tenant.id, args.n, args.concurrency, timed, stats, err.print
            )
            err.print(f"starting the worker; draining the {len(phase1_jobs)} jobs P1 submitted")
            start_worker(stack)
            await wait_arrivals(arrivals, phase1_jobs, args.timeout)
            out["pipelines"], done = await bench_pipelines(api, key, arrivals, args)
    events = [e async for e in client.get_workflow_handle(done[0]).fetch_history_events()]
    out["activities_per_pipeline"] = sum(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED for e in events)
    out["pipeline_activities_per_s"] = round(out["pipelines"]["per_s"] * out["activities_per_pipeline"], 2)
    out["hello"] = await bench_hello(client, args, run)
    out["pipeline_vs_hello_activity_rate"] = round(out["pipeline_activities_per_s"] / out["hello"]["per_s"], 3)
    return out


def report(r: dict[str, Any], args: argparse.Namespace) -> None:
    table = Table(title=f"Lodestone bench (concurrency {args.concurrency}, one dev server, {os.cpu_count()} cores)")
    for col in ("measure", "count", "rate/s", "p50 ms", "p99 ms"):
        table.add_column(col, justify="left" if col == "measure" else "right")

    def row(name: str, s: dict[str, float], unit: str) -> None:
        table.add_row(name, str(s["count"]), f"{s['per_s']:.1f} {unit}", f"{s['p50_ms']:.1f}", f"{s['p99_ms']:.1f}")

    p1 = r["p1"]
    row("raw client.start_workflow, no worker", p1["raw_start"], "starts")
    row("POST /v1/submissions, no worker", p1["post_submission"], "starts")
    row("submit in-process (floor), no worker", p1["floor_in_process"], "starts")
    row("POST /v1/submissions at half the raw rate", p1["post_at_half_raw_rate"], "starts")
    row("pipeline, POST to webhook", r["pipelines"], "pipelines")
    row("hello-world, start to result", r["hello"], "wf")
    # Piped to a file, rich would squeeze the table into 80 columns.
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    for line in targets(p1):
        print(line)
    print(
        f"activities per pipeline (from history): {r['activities_per_pipeline']}; "
        f"pipeline {r['pipeline_activities_per_s']:.1f} act/s vs hello {r['hello']['per_s']:.1f} act/s "
        f"= {r['pipeline_vs_hello_activity_rate']:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="starts per start benchmark, and hello workflows")
    parser.add_argument("--pipelines", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for deliveries")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (logs) afterwards")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lodestone-bench-", ignore_cleanup_errors=True) as tmp:
        data_dir = Path(tempfile.mkdtemp(prefix="lodestone-bench-")) if args.keep else Path(tmp)
        ports = {f"{name}_port": free_port() for name in PORTS}
        # Its webhook receiver listens on a random loopback port.
        settings = Settings(
            _env_file=None,
            data_dir=data_dir,
            database_url=None,
            s3_endpoint=None,
            temporal_address=None,
            llm_base_url=None,
            outbound_allow_cidrs=["127.0.0.1/32"],
            **ports,
        )
        # The bench measures throughput: lift the per-tenant submission rate limit.
        stack = Stack(
            settings, web_ui=False, extra_env={"SUBMISSIONS_PER_MINUTE": "1000000", "SUBMISSIONS_BURST": "100000"}
        )
        err.print(f"data dir {data_dir}")
        try:
            stack.start_infra(err.print)
            start_api(stack)
            result = asyncio.run(bench(stack, args))
        finally:
            err.print("stopping the stack")
            stack.stop()
    report(result, args)
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
