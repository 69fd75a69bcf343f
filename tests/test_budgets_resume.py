"""Resuming a job paused on a spent LLM budget (docs/budgets.md): a state machine's llm Task
pauses (`paused_budget`) instead of failing, and succeeds once PUT /v1/budgets raises the
budget; a pipeline job whose budget was raised with no signal (an API that died before
sending it) goes on at its next re-check; the wait is the re-check or the month's roll-over,
whichever is first; and a paused job can be cancelled."""

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func
from sqlmodel import select

from activities.budget_ledger import Spend, refusal
from devstack.receiver import WebhookReceiver
from lodestone.budget import Charge
from lodestone.db import tenant_session
from schema.budgets import LlmBudget, LlmLedgerEntry
from schema.tables import UsageRecord
from tests.conftest import _tenant
from tests.helpers import create_workflow, definition, submit, wait_job, worker_api
from tests.test_distributed_map import PROCESSOR, reader
from tests.test_job_events_durable import llm_machine

pytestmark = pytest.mark.timeout(120)


async def test_an_llm_task_pauses_on_a_spent_budget_and_succeeds_when_it_is_raised(settings, engine, temporal):
    tenant = await _tenant(settings, engine, f"Machine budget {uuid.uuid4().hex[:6]}")
    s = settings.model_copy(update={"temporal_task_queue": f"budget-sm-{uuid.uuid4()}"})
    async with worker_api(s, temporal, engine, tenant) as api:
        wf = await create_workflow(api, llm_machine(f"sm-budget-{uuid.uuid4().hex[:8]}", "offline"))
        assert (await api.put("/v1/budgets", json={"budgets": [{"unit": "tokens", "amount": 0}]})).status_code == 200
        resp = await api.post("/v1/submissions", json={"workflow_key": wf["key"], "input": {"company": "Acme"}})
        job_id = resp.json()["job_id"]
        await status_becomes(api, job_id, "paused_budget")
        put = await api.put("/v1/budgets", json={"budgets": [{"unit": "tokens", "amount": 10_000}]})
        assert put.json()["signalled"] == 1, put.text
        done = await wait_job(api, job_id, timeout=60)
        assert done["status"] == "succeeded", done
        assert done["output"]["text"].startswith("[offline output"), done
    async with tenant_session(engine, tenant.id) as sess:
        c = LlmLedgerEntry.__table__.c  # type: ignore[attr-defined]
        ledger = (await sess.execute(select(func.sum(c.tokens)).where(c.state == "settled"))).scalar_one()
        used = (await sess.execute(select(func.sum(UsageRecord.tokens_in + UsageRecord.tokens_out)))).scalar_one()
    assert ledger == used and ledger > 0
    await tenant.api.aclose()


async def status_becomes(api, job_id: str, status: str, timeout: float = 60) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while (job := (await api.get(f"/v1/jobs/{job_id}")).json())["status"] != status:
        assert job["status"] in ("pending", "queued", "processing", "paused_budget"), job
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.3)
    return job


async def test_a_paused_job_rechecks_by_itself_when_no_signal_comes(settings, engine, temporal):
    tenant = await _tenant(settings, engine, f"Recheck {uuid.uuid4().hex[:6]}")
    s = settings.model_copy(update={"temporal_task_queue": f"budget-re-{uuid.uuid4()}", "budget_recheck_seconds": 2.0})
    with WebhookReceiver(tenant.webhook_secret) as hook:
        async with worker_api(s, temporal, engine, tenant) as api:
            wf = await create_workflow(api, definition(hook.url))
            put = await api.put("/v1/budgets", json={"budgets": [{"unit": "tokens", "amount": 0}]})
            assert put.status_code == 200, put.text
            job_id = (await submit(api, wf["key"])).json()["job_id"]
            await status_becomes(api, job_id, "paused_budget")
            async with tenant_session(engine, tenant.id) as sess:  # raised behind the API's back: no signal
                budget = (await sess.exec(select(LlmBudget))).one()
                budget.amount = 100_000
                sess.add(budget)
            assert (await wait_job(api, job_id, timeout=60))["status"] == "delivered"


def test_the_wait_is_the_recheck_or_the_roll_over_whichever_is_first(settings):
    budget = LlmBudget(tenant_id=uuid.uuid4(), unit="tokens", amount=1, period="monthly")
    late = datetime(2026, 12, 31, 23, 59, 50, tzinfo=UTC)
    assert refusal(settings, budget, Spend(1, 0), Charge(5, 0.0), late).wait_seconds == 10
    early = datetime(2026, 12, 2, tzinfo=UTC)
    recheck = settings.budget_recheck_seconds
    assert refusal(settings, budget, Spend(1, 0), Charge(5, 0.0), early).wait_seconds == recheck
    fixed = LlmBudget(tenant_id=uuid.uuid4(), unit="usd", amount=1, period="fixed", starts_at=early)
    assert refusal(settings, fixed, Spend(1, 0), Charge(5, 0.0), late).wait_seconds == recheck


async def test_a_paused_job_can_be_cancelled(settings, engine, temporal):
    tenant = await _tenant(settings, engine, f"Cancel paused {uuid.uuid4().hex[:6]}")
    s = settings.model_copy(update={"temporal_task_queue": f"budget-cancel-{uuid.uuid4()}"})
    async with worker_api(s, temporal, engine, tenant) as api:
        wf = await create_workflow(api, definition("http://127.0.0.1:9/"))
        put = await api.put("/v1/budgets", json={"budgets": [{"unit": "tokens", "amount": 0}]})
        assert put.status_code == 200, put.text
        job_id = (await submit(api, wf["key"])).json()["job_id"]
        await status_becomes(api, job_id, "paused_budget")
        assert (await api.post(f"/v1/jobs/{job_id}/cancel")).status_code == 202
        assert (await wait_job(api, job_id, timeout=60))["status"] == "cancelled"
    await tenant.api.aclose()


async def test_a_distributed_maps_llm_items_pause_and_go_on_at_the_recheck(settings, engine, temporal):
    tenant = await _tenant(settings, engine, f"Map budget {uuid.uuid4().hex[:6]}")
    s = settings.model_copy(update={"temporal_task_queue": f"budget-map-{uuid.uuid4()}", "budget_recheck_seconds": 2.0})
    ask = {"Type": "Task", "Resource": "lodestone:llm", "End": True, "ResultSelector": {"text.$": "$.text"},
           "Parameters": {"prompt.$": "States.Format('Tell me about {}', $.company)", "model": "offline"}}  # fmt: skip
    each = {"Type": "Map", "ItemReader": reader("JSON", "$.items"), "End": True,
            "ItemProcessor": {**PROCESSOR, "StartAt": "Ask", "States": {"Ask": ask}}}  # fmt: skip
    body = {"key": f"map-budget-{uuid.uuid4().hex[:8]}", "kind": "state_machine",
            "state_machine": {"StartAt": "Each", "States": {"Each": each}}}  # fmt: skip
    async with worker_api(s, temporal, engine, tenant) as api:
        await create_workflow(api, body)
        items = await api.post("/v1/uploads", content=json.dumps([{"company": "A"}, {"company": "B"}]).encode())
        assert (await api.put("/v1/budgets", json={"budgets": [{"unit": "tokens", "amount": 0}]})).status_code == 200
        inp = {"items": items.json()["upload_id"]}
        job_id = (await api.post("/v1/submissions", json={"workflow_key": body["key"], "input": inp})).json()["job_id"]
        await status_becomes(api, job_id, "paused_budget")
        async with tenant_session(engine, tenant.id) as sess:  # raised with no signal: the items re-check
            budget = (await sess.exec(select(LlmBudget))).one()
            budget.amount = 100_000
            sess.add(budget)
        done = await wait_job(api, job_id, timeout=60)
        assert done["status"] == "succeeded", done
        assert [r["text"][:15] for r in done["output"]] == ["[offline output"] * 2, done
    await tenant.api.aclose()
