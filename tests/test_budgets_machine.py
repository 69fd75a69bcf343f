"""A state machine's llm Task meets a spent LLM budget (docs/budgets.md): the job pauses
(`paused_budget`) instead of failing the Task, and succeeds once the budget is raised."""

import asyncio
import time
import uuid

import pytest
from sqlalchemy import func
from sqlmodel import select

from lodestone.db import tenant_session
from schema.budgets import LlmLedgerEntry
from schema.tables import UsageRecord
from tests.conftest import _tenant
from tests.helpers import create_workflow, wait_job, worker_api

pytestmark = pytest.mark.timeout(120)


def llm_machine(key: str) -> dict:
    return {
        "key": key,
        "kind": "state_machine",
        "input_schema": {"type": "object", "properties": {"company": {"type": "string"}}},
        "state_machine": {
            "StartAt": "Ask",
            "States": {
                "Ask": {
                    "Type": "Task",
                    "Resource": "lodestone:llm",
                    "Parameters": {"prompt.$": "States.Format('Tell me about {}', $.company)", "model": "offline"},
                    "ResultSelector": {"text.$": "$.text"},
                    "Next": "Done",
                },
                "Done": {"Type": "Succeed"},
            },
        },
    }


async def test_an_llm_task_pauses_on_a_spent_budget_and_succeeds_when_it_is_raised(settings, engine, temporal):
    tenant = await _tenant(settings, engine, f"Machine budget {uuid.uuid4().hex[:6]}")
    s = settings.model_copy(update={"temporal_task_queue": f"budget-sm-{uuid.uuid4()}"})
    async with worker_api(s, temporal, engine, tenant) as api:
        wf = await create_workflow(api, llm_machine(f"sm-budget-{uuid.uuid4().hex[:8]}"))
        assert (await api.put("/v1/budgets", json={"budgets": [{"unit": "tokens", "amount": 0}]})).status_code == 200
        resp = await api.post("/v1/submissions", json={"workflow_key": wf["key"], "input": {"company": "Acme"}})
        job_id = resp.json()["job_id"]
        deadline = time.monotonic() + 60
        while (job := (await api.get(f"/v1/jobs/{job_id}")).json())["status"] != "paused_budget":
            assert job["status"] in ("pending", "queued", "processing"), job
            assert time.monotonic() < deadline, job
            await asyncio.sleep(0.3)
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
