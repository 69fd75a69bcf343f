"""Re-record the job-schedule history: `python -m tests.histories.record_schedules`.

Runs one ScheduledJobWorkflow (a job schedule's run, triggered) on a throwaway embedded
stack, as `record` does for the other workflows: it makes the job and runs it as a child
SubmissionWorkflow to delivery."""

import asyncio

import httpx

from devstack.graph_standin import GraphAPIStandIn
from devstack.receiver import WebhookReceiver
from lodestone.settings import Settings
from tests.helpers import create_workflow, definition, wait_job
from tests.histories.record import admin_tenant, on_stack, save


async def record(settings: Settings, graph: GraphAPIStandIn) -> None:
    tenant, client, headers = await admin_tenant(settings, "schedule-histories")
    async with httpx.AsyncClient(base_url=settings.api_url, headers=headers, timeout=30) as api:
        with WebhookReceiver(tenant.webhook_secret) as hook:
            await create_workflow(api, definition(hook.url, key="recorded-scheduled"))
            body = {"workflow_key": "recorded-scheduled", "input": {"company": "Acme"}, "cron": "0 9 * * 1"}
            sid = (await api.post("/v1/schedules", json=body)).json()["id"]
            await api.post(f"/v1/schedules/{sid}/trigger")
            while not (jobs := (await api.get(f"/v1/schedules/{sid}")).json()["recent_jobs"]):
                await asyncio.sleep(0.2)
            while (await api.get(f"/v1/jobs/{jobs[0]}")).status_code == 404:  # the run makes it first
                await asyncio.sleep(0.2)
            await wait_job(api, jobs[0], timeout=120)
            run = (await client.get_schedule_handle(sid).describe()).info.recent_actions[0].action
            await save("scheduled_job_delivered", client.get_workflow_handle(run.workflow_id))  # type: ignore[attr-defined]
            await client.get_schedule_handle(sid).delete()


if __name__ == "__main__":
    on_stack(record)
