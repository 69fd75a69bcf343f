"""Time from a token leaving the model to an SSE client of GET /v1/jobs/{id}/events, on the
embedded stack, with --streams jobs streamed at once. The model is a streaming
OpenAI-compatible stand-in (bench/stamping_model.py) that writes each chunk's send time
(time.time(), one host) into the chunk; each client stamps the token events it receives.
The floor: the same clients reading the stand-in's own stream directly (no worker, no
PostgreSQL, no API), as a ratio.

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
from rich.console import Console
from rich.table import Table
from stamping_model import StampingModel, stamps

from devstack.processes import free_port
from devstack.receiver import WebhookReceiver
from devstack.stack import Stack
from lodestone.settings import Settings

PORTS = ("postgres", "temporal", "temporal_http", "temporal_metrics", "temporal_ui", "api", "worker_metrics")
err = Console(stderr=True)


def definition(webhook_url: str) -> dict[str, Any]:
    """One LLM step on the stamping model, html only, one webhook."""
    return {
        "key": f"bench-events-{uuid.uuid4().hex[:8]}",
        "input_schema": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}},
        "steps": [{"id": "write", "model": "stamp", "inputs": {"n": "input.n"}, "instructions": "Write {{ n }}."}],
        "template": "<html><body>{{ steps.write | paragraphs }}</body></html>",
        "outputs": ["html"],
        "delivery": [{"type": "webhook", "url": webhook_url}],
    }


def summary(latencies: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"tokens": len(latencies), "p50_ms": round(cuts[49] * 1000, 1), "p99_ms": round(cuts[98] * 1000, 1)}


async def sse_lines(resp: httpx.Response) -> Any:
    """(event type, data) of each SSE frame; the receive time is taken by the caller."""
    kind, data = "", ""
    async for line in resp.aiter_lines():
        if line.startswith("event:"):
            kind = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            data = line.partition(":")[2].strip()
        elif not line and data:
            yield kind, data
            kind, data = "", ""


async def stream_job(api: httpx.AsyncClient, job_id: str) -> tuple[list[float], str]:
    """Per token, receive time minus the model's send time; and the job's end status."""
    out: list[float] = []
    async with api.stream("GET", f"/v1/jobs/{job_id}/events", timeout=300) as resp:
        resp.raise_for_status()
        async for kind, data in sse_lines(resp):
            now = time.time()
            event = json.loads(data)
            if kind == "token":
                out += [now - sent for sent in stamps(event["text"])]
            elif kind == "end":
                return out, event["status"]
    return out, "stream closed before its end event"


async def through_lodestone(settings: Settings, model: StampingModel, args: argparse.Namespace) -> dict[str, Any]:
    tenant, token = await bench_tenant(settings)
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=args.streams + 4)
    with WebhookReceiver(tenant.webhook_secret) as hook:
        async with httpx.AsyncClient(base_url=settings.api_url, timeout=60, headers=headers, limits=limits) as api:
            (await api.post("/v1/workflows", json=(body := definition(hook.url)))).raise_for_status()

            async def one(i: int) -> tuple[list[float], str]:
                resp = await api.post("/v1/submissions", json={"workflow_key": body["key"], "input": {"n": i}})
                resp.raise_for_status()
                return await stream_job(api, resp.json()["job_id"])

            err.print("warm-up: one job")
            await one(-1)
            err.print(f"{args.streams} jobs streamed at once, {args.chunks} chunks each")
            results = await asyncio.gather(*(one(i) for i in range(args.streams)))
    bad = [status for _, status in results if status != "delivered"]
    if bad:
        raise RuntimeError(f"{len(bad)} jobs did not end delivered: {bad[:3]}")
    return summary([x for lat, _ in results for x in lat])


async def direct(model: StampingModel, args: argparse.Namespace) -> dict[str, Any]:
    """The floor: the same number of clients on the model's own stream."""

    async def one(client: httpx.AsyncClient) -> list[float]:
        body = {"model": "stamp", "stream": True, "messages": [{"role": "user", "content": "floor"}]}
        out: list[float] = []
        async with client.stream("POST", f"{model.base_url}/chat/completions", json=body, timeout=300) as resp:
            async for line in resp.aiter_lines():
                if line.startswith("data: {"):
                    now = time.time()
                    for choice in json.loads(line[6:]).get("choices", []):
                        out += [now - sent for sent in stamps(choice["delta"].get("content") or "")]
        return out

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=args.streams + 4)) as client:
        results = await asyncio.gather(*(one(client) for _ in range(args.streams)))
    return summary([x for lat in results for x in lat])


def report(r: dict[str, Any]) -> None:
    table = Table(title=f"token to SSE client, {r['config']['streams']} streams at once, {os.cpu_count()} cores")
    for col in ("path", "tokens", "p50 ms", "p99 ms"):
        table.add_column(col, justify="left" if col == "path" else "right")
    for name, key in (("model → worker → PostgreSQL → API → client", "lodestone"), ("model → client (floor)", "floor")):
        s = r[key]
        table.add_row(name, str(s["tokens"]), f"{s['p50_ms']:.1f}", f"{s['p99_ms']:.1f}")
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    print(
        f"target: none set (issue 19 asks for the figures); p50 {r['lodestone']['p50_ms']} ms, "
        f"p99 {r['lodestone']['p99_ms']} ms; vs the floor: p50 x{r['p50_vs_floor']}, p99 x{r['p99_vs_floor']}; "
        f"load average {r['load_average']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=20, help="jobs streamed at once")
    parser.add_argument("--chunks", type=int, default=40, help="chunks the model streams per answer")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between the model's chunks")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (logs) afterwards")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="lodestone-bench-", ignore_cleanup_errors=True) as tmp,
        StampingModel(args.chunks, args.interval) as model,
    ):
        data_dir = Path(tempfile.mkdtemp(prefix="lodestone-bench-")) if args.keep else Path(tmp)
        settings = Settings(
            _env_file=None, data_dir=data_dir, database_url=None, s3_endpoint=None, temporal_address=None,
            llm_base_url=model.base_url, llm_api_key="bench", outbound_allow_cidrs=["127.0.0.1/32"],
            **{f"{name}_port": free_port() for name in PORTS},
        )  # fmt: skip
        env = {"LLM_BASE_URL": model.base_url, "LLM_API_KEY": "bench", "SUBMISSIONS_PER_MINUTE": "1000000"}
        stack = Stack(settings, web_ui=False, extra_env=env)
        err.print(f"data dir {data_dir}")
        try:
            stack.start_infra(err.print)
            stack.start_app(err.print)
            result: dict[str, Any] = {"config": {k: v for k, v in vars(args).items() if k != "keep"}}
            result["lodestone"] = asyncio.run(through_lodestone(settings, model, args))
            result["load_average"] = [round(x, 2) for x in os.getloadavg()]
            err.print(f"floor: {args.streams} clients on the model's own stream (the stack idle)")
            result["floor"] = asyncio.run(direct(model, args))
        finally:
            err.print("stopping the stack")
            stack.stop()
    for q in ("p50", "p99"):
        result[f"{q}_vs_floor"] = round(result["lodestone"][f"{q}_ms"] / max(result["floor"][f"{q}_ms"], 0.1), 1)
    report(result)
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
