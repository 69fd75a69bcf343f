"""Re-record submission_cancelled.json and machine_cancelled.json:
`.venv/bin/python -m tests.histories.record_cancelled`.

On a throwaway embedded stack (record.py's): a pipeline job cancelled while its first step
waits on the stand-in's slow model, and a state machine cancelled in its Wait state, both
through POST /v1/jobs/{id}/cancel."""

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from temporalio.client import Client

from devstack.graph_standin import GraphAPIStandIn
from devstack.receiver import WebhookReceiver
from lodestone.settings import Settings
from tests.helpers import create_workflow, definition, submit, wait_job
from tests.histories.record import on_stack, save, tenant_api
from tests.test_cancel import waiting_machine


async def cancel_when(
    api: httpx.AsyncClient, client: Client, name: str, key: str, ready: Callable[[Any], bool]
) -> None:
    job_id = (await submit(api, key, {"company": "Cancelled"})).json()["job_id"]
    while not ready((await api.get(f"/v1/jobs/{job_id}")).json()):
        await asyncio.sleep(0.1)
    assert (await api.post(f"/v1/jobs/{job_id}/cancel")).status_code == 202
    assert (await wait_job(api, job_id, timeout=60))["status"] == "cancelled"
    await save(name, client.get_workflow_handle(job_id))


async def record(settings: Settings, _graph: GraphAPIStandIn) -> None:
    async with tenant_api(settings, "cancelled-histories") as (client, api, tenant):
        with WebhookReceiver(tenant.webhook_secret) as hook:
            body = definition(hook.url, key="recorded-cancelled")
            body["steps"][0]["model"] = "slow"
            await create_workflow(api, body)
            await cancel_when(api, client, "submission_cancelled", body["key"], lambda j: bool(j["steps"]))
        machine = {**waiting_machine(), "key": "recorded-cancelled-wait"}
        await create_workflow(api, machine)
        await cancel_when(api, client, "machine_cancelled", machine["key"], lambda j: bool(j["path"]))


if __name__ == "__main__":
    on_stack(record)
