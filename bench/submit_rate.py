"""P1 (issue 22): the rate of POST /v1/submissions against a raw client.start_workflow loop
with the same worker state (no worker runs either's workflows while they are measured), and
the POST latency at half the raw rate, paced in an open loop (a request's latency counts
from when it was due, so a server that falls behind pays for it).

The floor beside them: services.submissions.submit called in this process (the same
transaction, start and start recorder, without HTTP, the API's process or its auth), at the
same concurrency."""

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from temporalio.client import Client

from lodestone import temporal_client
from lodestone.db import make_engine
from lodestone.settings import Settings
from services import submissions
from services.start_recorder import StartRecorder

P1_RATE = 0.8  # POST rate / raw start rate, at least
P1_P99_MS = 50.0  # POST p99 at half the raw start rate, at most
Stats = Callable[[list[float], float], dict[str, float]]
Timed = Callable[[int, int, Callable[[int], Awaitable[Any]]], Awaitable[tuple[list[float], float]]]


async def paced(n: int, rate: float, call: Callable[[int], Awaitable[Any]]) -> tuple[list[float], float]:
    """call(0..n-1), call i due at i/rate seconds (open loop): latencies from the due time, and the wall time."""
    start = time.monotonic()

    async def one(i: int) -> float:
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        await call(i)
        return time.monotonic() - due

    latencies = await asyncio.gather(*(one(i) for i in range(n)))
    return list(latencies), time.monotonic() - start


def body(key: str, i: int) -> dict[str, Any]:
    return {"workflow_key": key, "input": {"company": f"Acme {i}"}}


async def post(api: httpx.AsyncClient, key: str, i: int) -> str:
    resp = await api.post("/v1/submissions", json=body(key, i), headers={"Idempotency-Key": uuid.uuid4().hex})
    resp.raise_for_status()
    return str(resp.json()["job_id"])


async def measure(
    settings: Settings,
    client: Client,
    api: httpx.AsyncClient,
    key: str,
    tenant_id: uuid.UUID,
    n: int,
    concurrency: int,
    timed: Timed,
    stats: Stats,
    progress: Callable[[str], None],
) -> tuple[dict[str, Any], list[str]]:
    """Run with no worker polling: raw starts, POSTs, the in-process floor, then POSTs paced
    at half the raw rate. Returns the figures and the job ids made (for a worker to drain)."""
    run = uuid.uuid4().hex[:8]
    unpolled = f"bench-unpolled-{run}"
    job_ids: list[str] = []

    async def raw(i: int) -> None:
        await client.start_workflow("HelloWorkflow", "raw", id=f"raw-{run}-{i}", task_queue=unpolled)

    async def via_api(i: int) -> None:
        job_ids.append(await post(api, key, i))

    lodestone_client = await temporal_client.connect(settings)
    engine = make_engine(settings.app_database_url, settings.db_pool_size)
    recorder = StartRecorder(engine)  # as the API's
    recorder.start()

    async def in_process(i: int) -> None:
        job = await submissions.submit(
            engine,
            lodestone_client,
            settings,
            tenant_id=tenant_id,
            request=body(key, i),
            idempotency_key=uuid.uuid4().hex,
            recorder=recorder,
        )
        job_ids.append(str(job.id))

    out: dict[str, Any] = {}
    try:
        for name, call in (("raw_start", raw), ("post_submission", via_api), ("floor_in_process", in_process)):
            await timed(concurrency, concurrency, lambda i, c=call: c(n + i))  # type: ignore[misc]
            progress(f"{name} x{n}, concurrency {concurrency}, no worker")
            out[name] = stats(*await timed(n, concurrency, call))
    finally:
        await recorder.stop()
        await engine.dispose()
    half = out["raw_start"]["per_s"] / 2
    progress(f"POST /v1/submissions x{n} paced at {half:.1f}/s (half the raw rate)")
    out["post_at_half_raw_rate"] = stats(*await paced(n, half, via_api)) | {"target_per_s": round(half, 1)}
    out["post_vs_raw_start_rate"] = round(out["post_submission"]["per_s"] / out["raw_start"]["per_s"], 3)
    out["floor_vs_raw_start_rate"] = round(out["floor_in_process"]["per_s"] / out["raw_start"]["per_s"], 3)
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return out, job_ids


def targets(r: dict[str, Any]) -> list[str]:
    """The P1 lines: each target with its measured value and met / not met."""
    load = " ".join(f"{x:.2f}" for x in r["load_average"])
    rate, p99 = r["post_vs_raw_start_rate"], r["post_at_half_raw_rate"]["p99_ms"]
    return [
        f"P1 POST rate >= {P1_RATE}x raw start rate (no worker either): {rate:.3f}x "
        f"({r['post_submission']['per_s']:.1f} vs {r['raw_start']['per_s']:.1f}/s) "
        f"{'met' if rate >= P1_RATE else 'NOT met'}; floor (submit in-process, no HTTP): "
        f"{r['floor_vs_raw_start_rate']:.3f}x; load average {load}",
        f"P1 POST p99 <= {P1_P99_MS:.0f} ms at half the raw rate ({r['post_at_half_raw_rate']['target_per_s']}/s): "
        f"{p99:.1f} ms {'met' if p99 <= P1_P99_MS else 'NOT met'}; load average {load}",
    ]
