"""One fault run: submit the pipelines through the API as a client would (retrying with the
same Idempotency-Key when the API or the database is away), inflict the planned faults, and
wait for every job to settle."""

import asyncio
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from temporalio.client import Client

from devstack.keys import mint_token
from lodestone.db import tenant_session
from schema.statuses import TERMINAL
from schema.tables import Job
from services.tenants import create_tenant
from tests.faults.plan import Fault, FaultConfig, arrivals, schedule
from tests.faults.stack import FaultStack
from tests.standins.smtp_sink import SMTPSink
from tests.standins.switchable_llm import SwitchableOpenAIStandIn
from tests.standins.webhook_counter import CountingWebhookReceiver

RETRY_STATUS = {429, 500, 502, 503, 504}
SUBMIT_GIVE_UP = 300.0
MODEL = "ok-faults"  # the stand-in answers it normally


@dataclass
class Run:
    cfg: FaultConfig
    stack: FaultStack
    llm: SwitchableOpenAIStandIn
    hook: CountingWebhookReceiver
    sink: SMTPSink
    say: Callable[[str], None]
    engine: AsyncEngine
    temporal: Client
    tenant_id: uuid.UUID | None = None
    key: str = ""
    api: httpx.AsyncClient | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    t0: float = 0.0
    jobs: dict[int, str] = field(default_factory=dict)  # pipeline -> job id
    unsubmitted: int = 0
    submit_retries: int = 0
    statuses: dict[str, str] = field(default_factory=dict)  # job id -> status, as last read
    faults: list[dict[str, Any]] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0


def definition(key: str, webhook_url: str) -> dict[str, Any]:
    """research -> (angles, outline) -> write on the LLM stand-in; html and pdf; a webhook and an email."""
    steps = [
        ("research", {"company": "input.company"}),
        ("angles", {"r": "steps.research"}),
        ("outline", {"r": "steps.research"}),
        ("write", {"a": "steps.angles", "o": "steps.outline"}),
    ]
    return {
        "key": key,
        "input_schema": {"type": "object", "required": ["company"], "properties": {"company": {"type": "string"}}},
        "steps": [
            {
                "id": sid,
                "model": MODEL,
                "inputs": inputs,
                "instructions": sid + ": " + " ".join(f"{{{{ {name} }}}}" for name in inputs),
            }
            for sid, inputs in steps
        ],
        "template": "<html><body><h1>{{ input.company }}</h1>{{ steps.write | paragraphs }}</body></html>",
        "outputs": ["html", "pdf"],
        "delivery": [{"type": "webhook", "url": webhook_url}, {"type": "email", "to": "leads@example.com"}],
    }


async def setup(run: Run) -> None:
    s = run.stack.settings
    tenant = await create_tenant(run.engine, f"faults-{run.run_id}")
    run.tenant_id, run.hook.secret = tenant.id, tenant.webhook_secret
    token = mint_token(
        s.data_path, issuer=s.issuer, audience=s.auth_audience, tenant_id=str(tenant.id), roles=["admin"]
    )
    run.api = httpx.AsyncClient(base_url=s.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=15)
    run.key = f"faults-{run.run_id}"
    resp = await run.api.post("/v1/workflows", json=definition(run.key, run.hook.url))
    resp.raise_for_status()


async def submit(run: Run, i: int, at: float) -> None:
    await asyncio.sleep(max(0.0, run.t0 + at - time.monotonic()))
    assert run.api is not None
    body = {"workflow_key": run.key, "input": {"company": f"Fault Co {i}"}}
    give_up = time.monotonic() + SUBMIT_GIVE_UP
    while True:
        try:
            resp = await run.api.post("/v1/submissions", json=body, headers={"Idempotency-Key": f"{run.run_id}-{i}"})
            if resp.status_code == 202:
                run.jobs[i] = resp.json()["job_id"]
                return
            if resp.status_code not in RETRY_STATUS:
                raise RuntimeError(f"submission {i} answered {resp.status_code}: {resp.text}")
        except httpx.TransportError:
            pass
        run.submit_retries += 1
        if time.monotonic() > give_up:
            run.unsubmitted += 1
            return
        await asyncio.sleep(1.0)


async def in_flight(run: Run) -> dict[str, int]:
    """The activities pending right now across the unsettled jobs: what a fault meets."""
    open_jobs = [j for j in run.jobs.values() if run.statuses.get(j) not in TERMINAL]
    descs = await asyncio.gather(
        *(run.temporal.get_workflow_handle(j).describe() for j in open_jobs), return_exceptions=True
    )
    names = Counter(
        p.activity_type.name
        for d in descs
        if not isinstance(d, BaseException)
        for p in d.raw_description.pending_activities
    )
    return dict(names)


def turned_away(run: Run) -> int:
    """Deliveries the receivers have refused so far: 503s from the webhook, 451s from SMTP."""
    return run.hook.refused + sum(1 for _, code in run.sink.rcpt_answers if code == 451)


async def inflict(run: Run, fault: Fault) -> None:
    await asyncio.sleep(max(0.0, run.t0 + fault.at - time.monotonic()))
    note: dict[str, Any] = {"at": round(run.elapsed(), 1), "kind": fault.kind, "in_flight": await in_flight(run)}
    if fault.kind == "kill-worker":
        note["pid"] = await asyncio.to_thread(run.stack.kill, "worker")
        await asyncio.to_thread(run.stack.start_worker)
    elif fault.kind == "restart-api":
        note["pid"] = await asyncio.to_thread(run.stack.kill, "api")
        await asyncio.to_thread(run.stack.start_api)
    elif fault.kind == "llm-down":
        run.llm.go_down()
        await asyncio.sleep(fault.duration)
        run.llm.come_up()
    elif fault.kind == "receivers-down":
        run.hook.unavailable = run.sink.unavailable = True
        before = turned_away(run)
        await asyncio.sleep(fault.duration)
        # Held until it has turned a delivery away (for at most 3x as long), so it always meets one.
        until = time.monotonic() + 2 * fault.duration
        while turned_away(run) == before and time.monotonic() < until:
            await asyncio.sleep(0.5)
        run.hook.unavailable = run.sink.unavailable = False
        note["turned_away"] = turned_away(run) - before
    elif fault.kind == "restart-postgres":
        note["mid_delivery"] = await restart_postgres_mid_delivery(run, fault.duration)
    note["took"] = round(run.elapsed() - note["at"], 1)
    run.faults.append(note)
    run.say(
        f"t={note['at']:.0f}s {fault.kind} " + " ".join(f"{k}={v}" for k, v in note.items() if k not in ("at", "kind"))
    )


async def restart_postgres_mid_delivery(run: Run, down: float) -> bool:
    """Stops PostgreSQL while the webhook receiver holds a delivery it has accepted but not yet
    answered, so the 2xx arrives with the database gone and the attempt's bookkeeping meets the
    outage (where a send and its bookkeeping in one activity once sent twice). Waits up to a
    minute for a delivery to hold; returns whether one was held (else it restarts anyway)."""
    arrived, stopped = threading.Event(), threading.Event()

    def hold(status: int) -> None:  # in the receiver's request thread
        if status < 300 and not arrived.is_set():
            arrived.set()
            stopped.wait(30)

    run.hook.before_answer = hold
    try:
        met = await asyncio.to_thread(arrived.wait, 60)
        await asyncio.to_thread(run.stack.stop_postgres)
    finally:
        stopped.set()
        run.hook.before_answer = None
    await asyncio.sleep(down)
    await asyncio.to_thread(run.stack.start_postgres)
    return met


async def poll_statuses(run: Run) -> None:
    try:
        async with tenant_session(run.engine, run.tenant_id) as s:  # type: ignore[arg-type]
            rows = (await s.exec(select(Job.id, Job.status).where(Job.workflow_key == run.key))).all()
        run.statuses = {str(i): st for i, st in rows}
    except Exception as e:  # PostgreSQL may be restarting: keep the last reading
        run.say(f"status poll failed ({type(e).__name__}); PostgreSQL restarting?")


async def drive(run: Run) -> None:
    rng = random.Random(run.cfg.seed)
    plan, times = schedule(run.cfg, rng), arrivals(run.cfg, rng)
    await setup(run)
    run.say(
        f"seed {run.cfg.seed}: {len(times)} pipelines over {run.cfg.span:.0f}s; faults: "
        + ", ".join(f"{f.kind}@{f.at:.0f}s" for f in plan)
    )
    run.t0 = time.monotonic()
    tasks = [asyncio.create_task(submit(run, i, at)) for i, at in enumerate(times)]
    tasks += [asyncio.create_task(inflict(run, f)) for f in plan]
    deadline, last = run.t0 + run.cfg.span + run.cfg.settle_timeout, ""
    while time.monotonic() < deadline:
        await asyncio.sleep(2.0)
        for t in tasks:
            if t.done() and t.exception():
                raise t.exception()  # type: ignore[misc]
        await poll_statuses(run)
        line = f"submitted {len(run.jobs)}/{run.cfg.pipelines} " + " ".join(
            f"{k} {v}" for k, v in sorted(Counter(run.statuses.values()).items())
        )
        if line != last:
            run.say(f"t={run.elapsed():.0f}s {line}")
            last = line
        submitted = len(run.jobs) + run.unsubmitted == run.cfg.pipelines
        settled = all(run.statuses.get(j) in TERMINAL for j in run.jobs.values())
        if all(t.done() for t in tasks) and submitted and settled:
            return
    run.say("settle timeout: some jobs never finished")
    for t in tasks:
        t.cancel()
