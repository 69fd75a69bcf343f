"""The `local` model (SmolLM2-135M on xllamacpp, as `lodestone dev` serves it) through the
API's path, on the embedded stack: (1) jobs with one llm step, one at a time, each read from
its job event stream: time to first token (from POST /v1/submissions to the first `token`
event) and tokens/s (the step's tokens_out over the time from its first to its last token
event); the floor: the same prompt streamed from the model directly with the openai client;
(2) the demo pipeline (devstack/demo.py's lead-magnet, 4 llm steps, HTML and PDF, a webhook)
on the local model: job latency from POST to its `end` event.

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
from job_events import sse_lines
from openai import AsyncOpenAI
from rich.console import Console
from rich.table import Table

from devstack.demo import demo_definition
from devstack.processes import free_port
from devstack.receiver import WebhookReceiver
from devstack.stack import Stack
from lodestone.llm import LOCAL_MODEL
from lodestone.settings import Settings

PORTS = (
    "postgres",
    "temporal",
    "temporal_http",
    "temporal_metrics",
    "temporal_ui",
    "api",
    "worker_metrics",
    "local_llm",
)
INSTRUCTIONS = "Write a short note for the buyers of {{ company }} about what to look for in an anvil."
err = Console(stderr=True)


def one_step(webhook_url: str) -> dict[str, Any]:
    return {
        "key": f"bench-llm-{uuid.uuid4().hex[:8]}",
        "input_schema": {"type": "object", "required": ["company"], "properties": {"company": {"type": "string"}}},
        "steps": [{"id": "write", "model": LOCAL_MODEL, "inputs": {"company": "input.company"},
                   "instructions": INSTRUCTIONS}],
        "template": "<html><body>{{ steps.write | paragraphs }}</body></html>",
        "outputs": ["html"],
        "delivery": [{"type": "webhook", "url": webhook_url}],
    }  # fmt: skip


async def events(api: httpx.AsyncClient, job_id: str) -> list[tuple[float, str, dict[str, Any]]]:
    """(receive time, event type, data) of each frame of the job's stream, up to its `end`."""
    out: list[tuple[float, str, dict[str, Any]]] = []
    async with api.stream("GET", f"/v1/jobs/{job_id}/events", timeout=600) as resp:
        resp.raise_for_status()
        async for kind, data in sse_lines(resp):
            out.append((time.perf_counter(), kind, json.loads(data)))
            if kind == "end":
                return out
    raise RuntimeError(f"job {job_id}: the stream closed before its end event")


async def submit(api: httpx.AsyncClient, key: str, inp: dict[str, Any]) -> tuple[float, str]:
    sent = time.perf_counter()
    resp = await api.post("/v1/submissions", json={"workflow_key": key, "input": inp})
    resp.raise_for_status()
    return sent, resp.json()["job_id"]


async def llm_job(api: httpx.AsyncClient, key: str, i: int) -> dict[str, float]:
    sent, job_id = await submit(api, key, {"company": f"Anvil Works {i}"})
    frames = await events(api, job_id)
    if frames[-1][2]["status"] != "delivered":
        raise RuntimeError(f"job {job_id} ended {frames[-1][2]}")
    tokens = [at for at, kind, _ in frames if kind == "token"]
    job = (await api.get(f"/v1/jobs/{job_id}")).json()
    out = job["steps"][0]["usage"]["tokens_out"]
    return {
        "ttft_s": tokens[0] - sent,
        "tokens_out": out,
        "tokens_per_s": (out - 1) / max(tokens[-1] - tokens[0], 1e-6),
        "job_s": frames[-1][0] - sent,
    }


async def direct(url: str, i: int) -> dict[str, float]:
    """The floor: a prompt like the step's (another company: not in the model's prompt cache)
    streamed from the model by the openai client alone."""
    prompt = INSTRUCTIONS.replace("{{ company }}", f"Anvil Floor {i}")
    async with AsyncOpenAI(base_url=url, api_key="bench") as client:
        sent = time.perf_counter()
        stream = await client.chat.completions.create(
            model=LOCAL_MODEL, messages=[{"role": "user", "content": prompt}], stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        times, out = [], 0
        async for chunk in stream:
            if any(c.delta.content for c in chunk.choices):
                times.append(time.perf_counter())
            out = chunk.usage.completion_tokens if chunk.usage else out
    return {"ttft_s": times[0] - sent, "tokens_out": out, "tokens_per_s": (out - 1) / max(times[-1] - times[0], 1e-6)}


async def demo_job(api: httpx.AsyncClient, key: str) -> dict[str, float]:
    sent, job_id = await submit(api, key, {"company": "Acme Anvils", "email": "buyer@example.com"})
    frames = await events(api, job_id)
    if frames[-1][2]["status"] != "delivered":
        raise RuntimeError(f"demo job {job_id} ended {frames[-1][2]}")
    job = (await api.get(f"/v1/jobs/{job_id}")).json()
    return {"job_s": frames[-1][0] - sent, "tokens_out": sum(s["usage"]["tokens_out"] for s in job["steps"])}


def median(runs: list[dict[str, float]], name: str) -> float:
    return round(statistics.median(r[name] for r in runs), 3)


async def run(settings: Settings, url: str, args: argparse.Namespace) -> dict[str, Any]:
    tenant, token = await bench_tenant(settings)
    result: dict[str, Any] = {}
    with WebhookReceiver(tenant.webhook_secret) as hook:
        async with httpx.AsyncClient(
            base_url=settings.api_url, timeout=60, headers={"Authorization": f"Bearer {token}"}
        ) as api:
            (await api.post("/v1/workflows", json=(step := one_step(hook.url)))).raise_for_status()
            demo = demo_definition(hook.url, LOCAL_MODEL) | {"key": f"bench-demo-{uuid.uuid4().hex[:8]}"}
            (await api.post("/v1/workflows", json=demo)).raise_for_status()
            err.print("warm-up: one job")
            await llm_job(api, step["key"], -1)
            err.print(f"{args.runs} one-step jobs, one at a time")
            jobs = [await llm_job(api, step["key"], i) for i in range(args.runs)]
            err.print(f"{args.runs} floor runs: the model directly")
            floor = [await direct(url, i) for i in range(args.runs)]
            err.print(f"{args.demo_runs} demo pipeline jobs, one at a time")
            demos = [await demo_job(api, demo["key"]) for _ in range(args.demo_runs)]
    for name, runs in (("api_path", jobs), ("floor", floor)):
        result[name] = {k: median(runs, k) for k in ("ttft_s", "tokens_per_s", "tokens_out")}
    result["api_path"]["job_s"] = median(jobs, "job_s")
    result["demo"] = {"job_s": median(demos, "job_s"), "tokens_out": median(demos, "tokens_out"),
                      "runs_s": [round(d["job_s"], 2) for d in demos]}  # fmt: skip
    return result


def report(r: dict[str, Any]) -> None:
    table = Table(title=f"model `local`, {r['config']['threads']} thread(s), {os.cpu_count()} cores (medians)")
    for col in ("path", "time to first token s", "tokens/s", "tokens out", "job s"):
        table.add_column(col, justify="left" if col == "path" else "right")
    a, f, d = r["api_path"], r["floor"], r["demo"]
    table.add_row("POST → worker → model → event stream", f"{a['ttft_s']:.2f}", f"{a['tokens_per_s']:.1f}",
                  str(a["tokens_out"]), f"{a['job_s']:.2f}")  # fmt: skip
    table.add_row(
        "openai client → model (floor)", f"{f['ttft_s']:.2f}", f"{f['tokens_per_s']:.1f}", str(f["tokens_out"]), ""
    )
    table.add_row("demo pipeline (4 llm steps, HTML, PDF, webhook)", "", "", str(d["tokens_out"]), f"{d['job_s']:.2f}")
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    print(
        f"tokens/s through the API {a['tokens_per_s']} vs {f['tokens_per_s']} direct; first token "
        f"{a['ttft_s']} s vs {f['ttft_s']} s; demo job {d['job_s']} s; load average {r['load_average']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="one-step jobs, and floor runs")
    parser.add_argument("--demo-runs", type=int, default=2, help="demo pipeline jobs")
    parser.add_argument("--threads", type=int, default=1, help="LOCAL_LLM_THREADS")
    parser.add_argument("--max-tokens", type=int, default=128, help="LOCAL_LLM_MAX_TOKENS: each answer's length")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (logs) afterwards")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lodestone-bench-", ignore_cleanup_errors=True) as tmp:
        data_dir = Path(tempfile.mkdtemp(prefix="lodestone-bench-")) if args.keep else Path(tmp)
        settings = Settings(
            _env_file=None, data_dir=data_dir, database_url=None, s3_endpoint=None, temporal_address=None,
            outbound_allow_cidrs=["127.0.0.1/32"], local_llm_threads=args.threads,
            local_llm_max_tokens=args.max_tokens, **{f"{name}_port": free_port() for name in PORTS},
        )  # fmt: skip
        stack = Stack(settings, web_ui=False, local_llm=True, extra_env={"SUBMISSIONS_PER_MINUTE": "1000000"})
        err.print(f"data dir {data_dir}")
        try:
            stack.start_infra(err.print)
            stack.start_app(err.print)
            assert stack.local_model is not None
            result: dict[str, Any] = {"config": {k: v for k, v in vars(args).items() if k != "keep"}}
            result |= asyncio.run(run(settings, stack.local_model.url, args))
            result["load_average"] = [round(x, 2) for x in os.getloadavg()]
        finally:
            err.print("stopping the stack")
            stack.stop()
    report(result)
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
