"""Fair dispatch between tenants (issue 21): tenant A submits --backlog jobs (2,000), then
tenant B submits --light (10); B's p50 time from POST to its webhook against the same on the
idle stack, and A's throughput, with the fairness mechanism and without it, in one run: two
embedded stacks one after the other, the first with the dev server's matching.enableFairness
(TEMPORAL_FAIRNESS=true), the second without. Jobs are cheap: one offline LLM step, html
only, a webhook to a local receiver.

Targets: with fairness, B's p50 under A's backlog is at most 2x its idle p50; A's throughput
with fairness is at most 10% below A's throughput without it.

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

import httpx
from bench_tenant import bench_tenant
from pipeline import Arrivals, start_api, start_worker, wait_arrivals
from rich.console import Console
from rich.table import Table

from devstack.processes import free_port
from devstack.receiver import WebhookReceiver
from devstack.stack import Stack
from lodestone.settings import Settings

PORTS = ("postgres", "temporal", "temporal_http", "temporal_metrics", "temporal_ui", "api", "worker_metrics")
MODES = (("fair", True), ("fifo", False))  # (name, TEMPORAL_FAIRNESS)
err = Console(stderr=True)


def definition(webhook_url: str) -> dict[str, Any]:
    """One offline LLM step, html only, one webhook."""
    return {
        "key": f"bench-fair-{uuid.uuid4().hex[:8]}",
        "input_schema": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}},
        "steps": [{"id": "write", "model": "offline", "inputs": {"n": "input.n"}, "instructions": "Write {{ n }}."}],
        "template": "<html><body>{{ steps.write | paragraphs }}</body></html>",
        "outputs": ["html"],
        "delivery": [{"type": "webhook", "url": webhook_url}],
    }


def load() -> float:
    return round(os.getloadavg()[0], 2)


class Tenant:
    """A bench tenant: its API client, its workflow, its receiver's arrival times."""

    def __init__(self, api: httpx.AsyncClient, key: str, arrivals: Arrivals) -> None:
        self.api, self.key, self.arrivals = api, key, arrivals

    async def post(self, n: int, concurrency: int) -> dict[str, float]:
        """POST n submissions, `concurrency` at once: job id -> time posted."""
        posted: dict[str, float] = {}
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                t0 = time.monotonic()
                resp = await self.api.post("/v1/submissions", json={"workflow_key": self.key, "input": {"n": i}})
                resp.raise_for_status()
                posted[resp.json()["job_id"]] = t0

        await asyncio.gather(*(one(i) for i in range(n)))
        return posted

    def latencies(self, posted: dict[str, float]) -> list[float]:
        return [self.arrivals.at[j] - t for j, t in posted.items() if j in self.arrivals.at]


def p50_ms(latencies: list[float]) -> float:
    return round(statistics.median(latencies) * 1000, 1) if latencies else float("nan")


async def one_mode(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    settings = stack.settings
    out: dict[str, Any] = {}
    tenants: list[Tenant] = []
    receivers: list[WebhookReceiver] = []
    clients: list[httpx.AsyncClient] = []
    try:
        for name in ("A", "B"):
            made, token = await bench_tenant(settings, name=f"Bench {name}", ttl_seconds=4 * 3600)
            receiver = WebhookReceiver(made.webhook_secret)
            receiver.__enter__()
            receivers.append(receiver)
            receiver.received = arrivals = Arrivals()
            api = httpx.AsyncClient(base_url=settings.api_url, timeout=60, headers={"Authorization": f"Bearer {token}"})
            clients.append(api)
            resp = await api.post("/v1/workflows", json=definition(receiver.url))
            resp.raise_for_status()
            tenants.append(Tenant(api, resp.json()["key"], arrivals))
        a, b = tenants
        err.print("warm-up, then B alone on the idle stack")
        await wait_arrivals(a.arrivals, list(await a.post(4, 4)), args.timeout)
        idle = await b.post(args.light, args.light)
        await wait_arrivals(b.arrivals, list(idle), args.timeout)
        out["b_idle_p50_ms"], out["b_idle_load"] = p50_ms(b.latencies(idle)), load()
        err.print(f"A posts {args.backlog} jobs ({args.concurrency} at once), then B posts {args.light}")
        a_posted = await a.post(args.backlog, args.concurrency)
        out["a_posted_s"] = round(max(a_posted.values()) - min(a_posted.values()), 2)
        busy = await b.post(args.light, args.light)
        await wait_arrivals(b.arrivals, list(busy), args.timeout)
        out["b_busy_p50_ms"], out["b_busy_load"] = p50_ms(b.latencies(busy)), load()
        out["b_delivered"] = len(b.latencies(busy))
        out["a_backlog_left_when_b_done"] = sum(j not in a.arrivals.at for j in a_posted)
        await wait_arrivals(a.arrivals, list(a_posted), args.timeout)
        done = [a.arrivals.at[j] for j in a_posted if j in a.arrivals.at]
        wall = max(done) - min(a_posted.values())
        out["a_delivered"] = len(done)
        out["a_jobs_per_s"], out["a_load"] = round(len(done) / wall, 2), load()
        out["b_busy_vs_idle"] = round(out["b_busy_p50_ms"] / out["b_idle_p50_ms"], 2)
    finally:
        for api in clients:
            await api.aclose()
        for receiver in receivers:
            receiver.__exit__(None, None, None)
    return out


def run_mode(fair: bool, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lodestone-bench-", ignore_cleanup_errors=True) as tmp:
        data_dir = Path(tempfile.mkdtemp(prefix="lodestone-bench-")) if args.keep else Path(tmp)
        settings = Settings(
            _env_file=None, data_dir=data_dir, database_url=None, s3_endpoint=None, temporal_address=None,
            llm_base_url=None, outbound_allow_cidrs=["127.0.0.1/32"], temporal_fairness=fair,
            **{f"{name}_port": free_port() for name in PORTS},
        )  # fmt: skip
        env = {"SUBMISSIONS_PER_MINUTE": "1000000", "SUBMISSIONS_BURST": "100000"}
        stack = Stack(settings, web_ui=False, extra_env=env)
        err.print(f"fairness {'on' if fair else 'off'}: data dir {data_dir}")
        try:
            stack.start_infra(err.print)
            start_api(stack)
            start_worker(stack)
            return asyncio.run(one_mode(stack, args))
        finally:
            err.print("stopping the stack")
            stack.stop()


def report(r: dict[str, Any]) -> None:
    fair, fifo = r["fair"], r["fifo"]
    table = Table(title=f"fair dispatch: A {r['config']['backlog']} jobs, then B {r['config']['light']}; "
                  f"{os.cpu_count()} cores")  # fmt: skip
    for col in ("figure", "fairness on", "fairness off", "target", "met"):
        table.add_column(col, justify="left" if col in ("figure", "target") else "right")

    # (figure, the value's key, its load average's key or None, suffix)
    per_mode = [
        ("B p50 POST→webhook, idle stack (ms)", "b_idle_p50_ms", "b_idle_load", ""),
        ("B p50 POST→webhook, behind A's backlog (ms)", "b_busy_p50_ms", "b_busy_load", ""),
        ("B p50 behind the backlog / idle", "b_busy_vs_idle", None, "x"),
        ("A's jobs not yet delivered when B's were", "a_backlog_left_when_b_done", None, ""),
        ("A throughput (jobs/s)", "a_jobs_per_s", "a_load", ""),
    ]
    for figure, key, load_key, suffix in per_mode:
        cells = [f"{m[key]}{suffix}" + (f" (load {m[load_key]})" if load_key else "") for m in (fair, fifo)]
        target, met = ("<= 2x with fairness", r["b_ratio_met"]) if key == "b_busy_vs_idle" else ("", None)
        table.add_row(figure, *cells, target, "" if met is None else "met" if met else "not met")
    loss = f"{r['a_throughput_loss_pct']}%"
    table.add_row("A throughput loss with fairness", loss, "", "<= 10%", "met" if r["a_loss_met"] else "not met")
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=2000, help="jobs tenant A submits")
    parser.add_argument("--light", type=int, default=10, help="jobs tenant B submits (after A's)")
    parser.add_argument("--concurrency", type=int, default=16, help="A's submissions at once")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for deliveries")
    parser.add_argument("--keep", action="store_true", help="keep the data dirs (logs) afterwards")
    args = parser.parse_args()
    result: dict[str, Any] = {"config": {k: v for k, v in vars(args).items() if k != "keep"}}
    for name, fair in MODES:
        result[name] = run_mode(fair, args)
    result["b_ratio_met"] = result["fair"]["b_busy_vs_idle"] <= 2.0
    fair_rate, fifo_rate = result["fair"]["a_jobs_per_s"], result["fifo"]["a_jobs_per_s"]
    result["a_throughput_loss_pct"] = round(max(0.0, 1 - fair_rate / fifo_rate) * 100, 1)
    result["a_loss_met"] = result["a_throughput_loss_pct"] <= 10.0
    report(result)
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
