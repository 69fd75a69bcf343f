"""Re-record submission_budget_paused.json and machine_budget_paused.json:
`.venv/bin/python -m tests.histories.record_budget`.

On a throwaway embedded stack (record.py's): a pipeline job and a state machine whose first
LLM call meets a spent budget (0 tokens) pause `paused_budget`, and go on to delivered and
succeeded once PUT /v1/budgets raises it (the budget_changed signal)."""

import asyncio
from typing import Any

import httpx
from temporalio.client import Client

from devstack.graph_standin import GraphAPIStandIn
from devstack.receiver import WebhookReceiver
from lodestone.settings import Settings
from tests.helpers import create_workflow, definition, submit, wait_job
from tests.histories.record import on_stack, save, tenant_api
from tests.test_job_events_durable import llm_machine


async def paused_then_raised(api: httpx.AsyncClient, client: Client, name: str, key: str, ends: str) -> None:
    assert (await api.put("/v1/budgets", json={"budgets": [{"unit": "tokens", "amount": 0}]})).status_code == 200
    job_id = (await submit(api, key)).json()["job_id"]
    job: dict[str, Any] = {}
    while job.get("status") != "paused_budget":
        await asyncio.sleep(0.2)
        job = (await api.get(f"/v1/jobs/{job_id}")).json()
    raised = await api.put("/v1/budgets", json={"budgets": [{"unit": "tokens", "amount": 1_000_000}]})
    assert raised.json()["signalled"] == 1, raised.text
    assert (await wait_job(api, job_id, timeout=60))["status"] == ends
    await save(name, client.get_workflow_handle(job_id))


async def record(settings: Settings, _graph: GraphAPIStandIn) -> None:
    async with tenant_api(settings, "budget-histories") as (client, api, tenant):
        with WebhookReceiver(tenant.webhook_secret) as hook:
            body = definition(hook.url, key="recorded-budget")
            await create_workflow(api, body)
            await paused_then_raised(api, client, "submission_budget_paused", body["key"], "delivered")
        machine = llm_machine("recorded-budget-machine", "offline")
        await create_workflow(api, machine)
        await paused_then_raised(api, client, "machine_budget_paused", machine["key"], "succeeded")


if __name__ == "__main__":
    on_stack(record)
