"""LLM budgets on the session stack (docs/budgets.md): a tenant with a budget for 3 jobs
submits 10; exactly 3 run their LLM step and the other 7 pause (paused_budget in the job, its
events and the JobStatus search attribute); the worker is killed with SIGKILL while they wait;
raising the budget resumes all 7 on a new worker to delivered; the ledger's total equals the
usage rows'. And the ledger's own promises: a retried call counted once, a crashed worker's
reservation released, GET/PUT /v1/budgets and usage per month."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, text
from sqlmodel import select

from activities import budget_ledger
from activities.budget_meter import Meter
from activities.llm_calls import ask_models
from devstack.receiver import WebhookReceiver
from lodestone.budget import Charge, next_month, period_bounds, worst_case
from lodestone.db import tenant_session
from lodestone.llm import ChatRequest, OfflineLLM
from lodestone.ports import free_port
from schema.budgets import LlmLedgerEntry
from schema.tables import JobEvent, UsageRecord
from tests.conftest import _tenant
from tests.helpers import create_workflow, in_process_api, submit, wait_job
from workflows.types import STATUS

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Research {{ company }}."


def one_step(key: str, webhook_url: str) -> dict[str, Any]:
    return {
        "key": key,
        "input_schema": {"type": "object", "required": ["company"], "properties": {"company": {"type": "string"}}},
        "steps": [
            {"id": "research", "model": "offline", "inputs": {"company": "input.company"}, "instructions": PROMPT}
        ],
        "template": "<p>{{ steps.research }}</p>",
        "outputs": ["html"],
        "delivery": [{"type": "webhook", "url": webhook_url}],
    }


def job_tokens(company: str) -> int:
    """One job's tokens: its one offline call, whose reservation is exact."""
    request = ChatRequest([{"role": "user", "content": PROMPT.replace("{{ company }}", company)}])
    return worst_case("offline", request, None, 3.0, 2048).tokens


async def until(check: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        await asyncio.sleep(0.3)


def start_worker(stack: Any, queue: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **stack.env(), "TEMPORAL_TASK_QUEUE": queue, "WORKER_METRICS_PORT": str(free_port())}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "cli.main", "worker"], env=env, stdout=out, stderr=out, cwd=ROOT)


async def ledger_and_usage(engine: Any, tenant_id: uuid.UUID) -> tuple[int, int]:
    async with tenant_session(engine, tenant_id) as s:
        settled = LlmLedgerEntry.__table__.c  # type: ignore[attr-defined]
        ledger = (
            await s.execute(select(func.coalesce(func.sum(settled.tokens), 0)).where(settled.state == "settled"))
        ).scalar_one()
        used = (
            await s.execute(select(func.coalesce(func.sum(UsageRecord.tokens_in + UsageRecord.tokens_out), 0)))
        ).scalar_one()
    return int(ledger), int(used)


def test_periods_and_exact_offline_reservation():
    now = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)
    assert period_bounds("monthly", now, now) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert next_month(datetime(2026, 1, 31, tzinfo=UTC)) == datetime(2026, 2, 1, tzinfo=UTC)
    assert period_bounds("fixed", now, now) == (now, None)
    paid = worst_case(
        "m", ChatRequest([{"role": "user", "content": "x" * 300}], max_tokens=100), {"m": (1.0, 2.0)}, 3.0, 9
    )
    assert paid == Charge(100 + 8 + 100, round((108 * 1.0 + 100 * 2.0) / 1e6, 8))
    assert worst_case("unpriced", ChatRequest([{"role": "user", "content": "hi"}]), None, 3.0, 50).usd == 0.0


async def test_ten_jobs_three_fit_the_rest_pause_and_resume_across_a_worker_kill(
    settings, engine, stack, temporal, tmp_path
):
    tenant = await _tenant(settings, engine, f"Budget {uuid.uuid4().hex[:6]}")
    queue = f"budgets-{uuid.uuid4()}"
    s = settings.model_copy(update={"temporal_task_queue": queue})
    token = tenant.api.headers["authorization"].removeprefix("Bearer ")
    cost = job_tokens("Acme")
    worker = start_worker(stack, queue, tmp_path / "worker.log")
    hook, notices = WebhookReceiver(tenant.webhook_secret), WebhookReceiver(tenant.webhook_secret)
    try:
        with hook, notices:
            async with in_process_api(s, token) as api:
                key = (await create_workflow(api, one_step(f"budget-{uuid.uuid4().hex[:8]}", hook.url)))["key"]
                budget = {"unit": "tokens", "amount": cost * 3.5, "notify_url": notices.url}
                put = await api.put("/v1/budgets", json={"budgets": [budget]})
                assert put.status_code == 200, put.text
                ids = [(await submit(api, key)).json()["job_id"] for _ in range(10)]

                async def statuses() -> dict[str, str]:
                    return {j: (await api.get(f"/v1/jobs/{j}")).json()["status"] for j in ids}

                async def settled() -> dict[str, str] | None:
                    now = await statuses()
                    counts = sorted(now.values())
                    return now if counts == ["delivered"] * 3 + ["paused_budget"] * 7 else None

                first = await until(settled, 90, "3 delivered and 7 paused")
                assert await ledger_and_usage(engine, tenant.id) == (3 * cost, 3 * cost)
                paused = [j for j, st in first.items() if st == "paused_budget"]
                described = await temporal.get_workflow_handle(paused[0]).describe()
                assert described.typed_search_attributes.get(STATUS) == "paused_budget"
                async with tenant_session(engine, tenant.id) as sess:
                    seen = (await sess.exec(select(JobEvent.data).where(JobEvent.job_id == uuid.UUID(paused[0])))).all()
                assert {"status": "paused_budget", "error": None} in seen, seen
                # 3 of 3.5 spent: the 80% notice, once, signed with the tenant's webhook secret.
                sent = [json.loads(r.body) for r in notices.successes()]
                assert [(n["type"], n["threshold_percent"], n["spent"]) for n in sent] == [
                    ("budget.threshold", 80, 3 * cost)
                ]

                # The worker dies while the 7 wait; a new one takes them over.
                worker.send_signal(signal.SIGKILL)
                worker.wait(10)
                worker = start_worker(stack, queue, tmp_path / "worker.log")

                raised = await api.put("/v1/budgets", json={"budgets": [{**budget, "amount": cost * 20}]})
                assert raised.status_code == 200 and raised.json()["signalled"] == 7, raised.text
                for j in paused:
                    assert (await wait_job(api, j, timeout=90))["status"] == "delivered"
                assert await ledger_and_usage(engine, tenant.id) == (10 * cost, 10 * cost)
                got = (await api.get("/v1/budgets")).json()["budgets"][0]
                assert got["spent"] == 10 * cost and got["reserved"] == 0, got
                month = (await api.get("/v1/usage", params={"group_by": "month"})).json()
                assert month["groups"] == [{"key": datetime.now(UTC).strftime("%Y-%m"), **month["total"]}], month
                assert month["total"]["calls"] == 10
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        await tenant.api.aclose()


async def pending_jobs(settings, engine, workflows: int = 1) -> tuple[Any, list[tuple[str, str]]]:  # type: ignore[no-untyped-def]
    """A tenant with one job of each of `workflows` workflows, (key, job id) each, that no
    worker runs (their queue has none): rows for ledger entries."""
    tenant = await _tenant(settings, engine, f"Ledger {uuid.uuid4().hex[:6]}")
    s = settings.model_copy(update={"temporal_task_queue": f"nobody-{uuid.uuid4()}"})
    token = tenant.api.headers["authorization"].removeprefix("Bearer ")
    jobs = []
    async with in_process_api(s, token) as api:
        for _ in range(workflows):
            body = one_step(f"ledger-{uuid.uuid4().hex[:8]}", "http://127.0.0.1:9/")
            key = (await create_workflow(api, body))["key"]
            jobs.append((key, (await submit(api, key)).json()["job_id"]))
    await tenant.api.aclose()
    return tenant, jobs


async def pending_job(settings, engine) -> tuple[Any, str]:  # type: ignore[no-untyped-def]
    tenant, [(_, job_id)] = await pending_jobs(settings, engine)
    return tenant, job_id


async def set_budget(engine: Any, tenant_id: uuid.UUID, amount: float, scope: str = "") -> None:
    async with tenant_session(engine, tenant_id) as s:
        await s.execute(
            text(
                "INSERT INTO llm_budgets (tenant_id, scope, unit, amount, period, starts_at, updated_at) "
                "VALUES (:t, :s, 'tokens', :a, 'monthly', now(), now())"
            ),
            {"t": tenant_id, "s": scope, "a": amount},
        )


async def test_a_retried_call_whose_first_attempt_settled_is_counted_once(settings, engine):
    tenant, job_id = await pending_job(settings, engine)
    request = ChatRequest([{"role": "user", "content": "Research Acme."}])
    cost = worst_case("offline", request, None, 3.0, 2048).tokens
    await set_budget(engine, tenant.id, cost * 1.5)  # room for one call, not two
    for _attempt in range(2):  # the same step's call, by two attempts of its activity
        meter = Meter(engine, settings, str(tenant.id), job_id, "research")
        answered = await ask_models(
            OfflineLLM(), settings, None, None, str(tenant.id), ["offline"], request, None, meter, engine=engine
        )  # type: ignore[arg-type]
        assert answered.completion.tokens_in + answered.completion.tokens_out == cost
    async with tenant_session(engine, tenant.id) as s:
        rows = (await s.exec(select(LlmLedgerEntry).where(LlmLedgerEntry.job_id == uuid.UUID(job_id)))).all()
    assert [(r.call_key, r.state, r.tokens) for r in rows] == [("research#1:default/offline", "settled", cost)]
    # Another call does not fit beside it: the attempt ends unsent, as BudgetExhausted.
    other = Meter(engine, settings, str(tenant.id), job_id, "write")
    with pytest.raises(Exception) as refused:
        await ask_models(
            OfflineLLM(), settings, None, None, str(tenant.id), ["offline"], request, None, other, engine=engine
        )  # type: ignore[arg-type]
    assert getattr(refused.value, "type", None) == "BudgetExhausted", refused.value


async def test_a_crashed_workers_reservation_is_released(settings, engine):
    tenant, job_id = await pending_job(settings, engine)
    await set_budget(engine, tenant.id, 100)
    short = settings.model_copy(update={"budget_reservation_seconds": 1.0})
    tid = str(tenant.id)
    # A worker reserves 80 and dies before settling: the reservation holds until it expires...
    await budget_ledger.reserve(engine, short, tid, job_id, "lost#1:default/m", "default", "m", Charge(80, 0.0))
    with pytest.raises(budget_ledger.BudgetExhausted):
        await budget_ledger.reserve(engine, short, tid, job_id, "other#1:default/m", "default", "m", Charge(30, 0.0))
    labels = {"tenant_id": tid, "scope": "", "unit": "tokens"}
    assert REGISTRY.get_sample_value("lodestone_budget_reserved", labels) == 80
    assert REGISTRY.get_sample_value("lodestone_budget_refusals_total", {"tenant_id": tid}) == 1
    # ...the lost call's own retry takes it over at once...
    await budget_ledger.reserve(engine, short, tid, job_id, "lost#1:default/m", "default", "m", Charge(80, 0.0))
    await asyncio.sleep(1.2)  # past expires_at (what is asserted is the state after it, not the sleep)
    # ...and once expired it counts nothing: the next reservation fits and marks it released.
    await budget_ledger.reserve(engine, short, tid, job_id, "other#1:default/m", "default", "m", Charge(30, 0.0))
    async with tenant_session(engine, tenant.id) as s:
        rows = dict((await s.exec(select(LlmLedgerEntry.call_key, LlmLedgerEntry.state))).all())
    assert rows == {"lost#1:default/m": "released", "other#1:default/m": "reserved"}


async def test_budgets_api(settings, engine):
    tenant = await _tenant(settings, engine, f"Budgets {uuid.uuid4().hex[:6]}")
    api = tenant.api
    body = {"budgets": [{"unit": "usd", "amount": 5}, {"workflow_key": "wf-x", "unit": "tokens", "amount": 1000}]}
    put = await api.put("/v1/budgets", json=body)
    assert put.status_code == 200, put.text
    got = (await api.get("/v1/budgets")).json()["budgets"]
    assert [(b["workflow_key"], b["unit"], b["amount"], b["period"], b["spent"]) for b in got] == [
        (None, "usd", 5, "monthly", 0),
        ("wf-x", "tokens", 1000, "monthly", 0),
    ]
    for bad in (
        {"budgets": [{"unit": "euro", "amount": 1}]},
        {"budgets": [{"unit": "usd", "amount": -1}]},
        {"budgets": [{"unit": "usd", "amount": 1}, {"unit": "tokens", "amount": 2}]},
        {"budgets": [{"unit": "usd", "amount": 1, "notify_url": "ftp://example.com/x"}]},
    ):
        resp = await api.put("/v1/budgets", json=bad)
        assert resp.status_code == 422, (bad, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
    viewer = tenant.token_for(settings, "viewer")
    async with httpx.AsyncClient(base_url=settings.api_url, headers={"Authorization": f"Bearer {viewer}"}) as v:
        assert (await v.get("/v1/budgets")).status_code == 200
        assert (await v.put("/v1/budgets", json={"budgets": []})).status_code == 403
    await api.aclose()


async def test_a_workflows_budget_counts_only_its_own_jobs(settings, engine):
    tenant, [(key, capped), (_, free)] = await pending_jobs(settings, engine, workflows=2)
    await set_budget(engine, tenant.id, 100, scope=key)
    tid = str(tenant.id)
    await budget_ledger.reserve(engine, settings, tid, capped, "a#1:default/m", "default", "m", Charge(80, 0.0))
    with pytest.raises(budget_ledger.BudgetExhausted, match="'" + key + "' workflow's monthly LLM budget"):
        await budget_ledger.reserve(engine, settings, tid, capped, "b#1:default/m", "default", "m", Charge(30, 0.0))
    # The other workflow's job has no budget of its own, and the tenant none.
    await budget_ledger.reserve(engine, settings, tid, free, "a#1:default/m", "default", "m", Charge(500, 0.0))
