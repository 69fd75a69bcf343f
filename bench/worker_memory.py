"""P6, worker memory: on one embedded stack, the Lodestone worker's RSS with N pipelines in
flight (each 3-step pipeline waits on a model stand-in that does not answer), against a bare
SDK worker (bench/trivial_worker.py) holding N trivial workflows, on the same Temporal server
in the same run. Also `import worker` against `import temporalio`, each in a fresh interpreter.

Progress goes to stderr; a table and then one JSON line (the last) go to stdout."""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pipeline
from bench_tenant import bench_tenant
from rich.console import Console
from rich.table import Table
from sqlmodel import col, func, select
from temporalio.client import Client
from temporalio.service import RPCError

from devstack.processes import free_port
from devstack.stack import Stack
from lodestone.db import make_engine, tenant_session
from lodestone.settings import Settings
from schema.tables import Job

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGET = 2.2  # P6: the Lodestone worker's RSS at most this many times the bare worker's
err = Console(stderr=True)

RSS_OF_IMPORT = """
import importlib, os, sys
sys.path.insert(0, {root!r})
for name in {modules!r}:
    importlib.import_module(name)
print(int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
"""


class BlockedModel:
    """An OpenAI-compatible endpoint that takes each request and answers none of them until
    released (then 503): every step that calls it stays running."""

    def __init__(self) -> None:
        self.released = threading.Event()
        released = self.released

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length", 0)))
                released.wait()
                self.send_response(503)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.request_queue_size = 256
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> "BlockedModel":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()


def definition() -> dict[str, Any]:
    """bench/pipeline.py's research -> outline -> write, HTML only, on the blocked model; its
    webhook is never reached."""
    body = pipeline.definition("http://127.0.0.1:9/never")
    for step in body["steps"]:
        step["model"] = "blocked"
    return body


def rss(pid: int) -> int:
    """The process's resident set, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def settled_rss(pid: int, samples: int = 5) -> int:
    """The largest of a few readings a second apart, once the worker has everything in hand."""
    readings = []
    for _ in range(samples):
        readings.append(rss(pid))
        time.sleep(1)
    return max(readings)


def import_rss(*modules: str) -> int:
    code = RSS_OF_IMPORT.format(root=str(ROOT), modules=list(modules))
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


async def held(client: Client, workflow_ids: list[str], query: str, concurrency: int) -> None:
    """Returns once each workflow has answered `query`: its worker holds it."""

    async def ask(i: int) -> None:
        for attempt in range(60):
            try:
                await client.get_workflow_handle(workflow_ids[i]).query(query)
                return
            except RPCError as e:  # a workflow task that failed (a deadlock timeout under load) is retried
                if attempt == 59:
                    raise
                err.print(f"[yellow]{workflow_ids[i]}: {e}; asking again[/yellow]")
                await asyncio.sleep(1)

    await in_batches(len(workflow_ids), concurrency, ask)


async def in_batches(n: int, concurrency: int, call: Callable[[int], Awaitable[Any]]) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            await call(i)

    await asyncio.gather(*(one(i) for i in range(n)))


async def lodestone_worker(settings: Settings, stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    tenant, token = await bench_tenant(settings, "Bench memory")
    engine = make_engine(settings.app_database_url, 2)
    client = await Client.connect(settings.temporal_target)
    pid = stack.group.pid("worker")
    idle = rss(pid)
    async with httpx.AsyncClient(
        base_url=settings.api_url, timeout=60, headers={"Authorization": f"Bearer {token}"}
    ) as api:
        resp = await api.post("/v1/workflows", json=definition())
        if resp.status_code != 201:
            raise RuntimeError(f"the definition was refused: {resp.text}")
        key = resp.json()["key"]

        job_ids: list[str] = []

        async def post(i: int) -> None:
            r = await api.post(
                "/v1/submissions",
                json={"workflow_key": key, "input": {"company": f"Acme {i}"}},
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
            r.raise_for_status()
            job_ids.append(r.json()["job_id"])

        err.print(f"{args.n} pipelines submitted, each to wait on the blocked model")
        t0 = time.monotonic()
        await in_batches(args.n, args.concurrency, post)

    # Every run is in the worker's hands once it answers a query: waiting on a step, or (on a
    # worker whose activity slots the blocked steps fill) on its next activity.
    await held(client, job_ids, "progress", args.concurrency)
    took = time.monotonic() - t0
    async with tenant_session(engine, tenant.id) as s:
        query = select(func.count()).select_from(Job).where(col(Job.status) == "processing")
        processing = int((await s.exec(query)).one())
    await engine.dispose()
    err.print(f"{args.n} pipelines in flight ({processing} processing) after {took:.1f}s; reading the worker's RSS")
    return {"idle_rss": idle, "rss": settled_rss(pid), "in_flight_after_s": round(took, 1), "processing": processing}


async def bare_worker(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    queue = f"bench-bare-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "trivial_worker.py"), settings.temporal_target, queue],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "polling":
            raise RuntimeError("the bare worker did not start")
        idle = rss(proc.pid)
        client = await Client.connect(settings.temporal_target)
        handles = []

        async def start(i: int) -> None:
            handles.append(await client.start_workflow("WaitingWorkflow", id=f"{queue}-{i}", task_queue=queue))

        err.print(f"{args.n} trivial workflows on a bare SDK worker")
        await in_batches(args.n, args.concurrency, start)
        await held(client, [h.id for h in handles], "waiting", args.concurrency)
        return {"idle_rss": idle, "rss": settled_rss(proc.pid)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def bench(settings: Settings, stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"config": {k: v for k, v in vars(args).items() if k != "keep"}}
    out["import_temporalio_rss"] = import_rss("temporalio.client", "temporalio.worker")
    out["import_worker_rss"] = import_rss("worker")
    out["lodestone"] = await lodestone_worker(settings, stack, args)
    out["bare"] = await bare_worker(settings, args)
    out["p6_ratio"] = round(out["lodestone"]["rss"] / out["bare"]["rss"], 3)
    out["p6_met"] = out["p6_ratio"] <= TARGET
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return out


def mib(n: int) -> str:
    return f"{n / 2**20:.1f}"


def report(r: dict[str, Any]) -> None:
    table = Table(title=f"Worker memory ({r['config']['n']} in flight, {os.cpu_count()} cores)")
    for name in ("measure", "RSS MiB"):
        table.add_column(name, justify="left" if name == "measure" else "right")
    table.add_row("import temporalio (client, worker)", mib(r["import_temporalio_rss"]))
    table.add_row("import worker", mib(r["import_worker_rss"]))
    table.add_row("Lodestone worker, idle", mib(r["lodestone"]["idle_rss"]))
    table.add_row(f"Lodestone worker, {r['config']['n']} pipelines in flight", mib(r["lodestone"]["rss"]))
    table.add_row("bare SDK worker, idle", mib(r["bare"]["idle_rss"]))
    table.add_row(f"bare SDK worker, {r['config']['n']} trivial workflows", mib(r["bare"]["rss"]))
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    verdict = "met" if r["p6_met"] else "not met"
    load = ", ".join(str(x) for x in r["load_average"])
    print(
        f"P6 worker RSS / bare SDK worker RSS: {r['p6_ratio']:.3f} (target <= {TARGET}): {verdict}; load average {load}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="pipelines, and trivial workflows, in flight")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--keep", action="store_true", help="keep the data dir (logs) afterwards")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="lodestone-bench-", ignore_cleanup_errors=True) as tmp,
        BlockedModel() as model,
    ):
        data_dir = Path(tempfile.mkdtemp(prefix="lodestone-bench-")) if args.keep else Path(tmp)
        ports = {f"{name}_port": free_port() for name in pipeline.PORTS}
        settings = Settings(
            _env_file=None,
            data_dir=data_dir,
            database_url=None,
            s3_endpoint=None,
            temporal_address=None,
            llm_base_url=model.base_url,
            llm_api_key="bench",
            outbound_allow_cidrs=["127.0.0.1/32"],  # the webhook target (never reached)
            **ports,
        )
        env = {
            "LLM_BASE_URL": model.base_url,
            "LLM_API_KEY": "bench",
            "LLM_TIMEOUT_SECONDS": "3600",  # the steps wait, not retry
            "SUBMISSIONS_PER_MINUTE": "1000000",
            "SUBMISSIONS_BURST": "100000",
        }
        stack = Stack(settings, web_ui=False, extra_env=env)
        err.print(f"data dir {data_dir}")
        try:
            stack.start_infra(err.print)
            stack.start_app(err.print)
            result = asyncio.run(bench(settings, stack, args))
        finally:
            err.print("stopping the stack")
            model.released.set()
            stack.stop()
    report(result)
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
