"""SubmissionWorkflow's bookkeeping (status writes, the plan, delivery records) runs as local
activities: a 3-step HTML-only pipeline, on the real stack, takes 6 workflow tasks where each
bookkeeping activity of its own took 11,
and still writes every status, record and event."""

import subprocess
import sys
from collections import Counter
from pathlib import Path

from temporalio.api.enums.v1 import EventType

from devstack.receiver import WebhookReceiver
from tests.helpers import create_workflow, definition, submit, wait_job

# Started, then one per completed activity: research, outline, write, render, send_webhook.
WORKFLOW_TASKS = 6
BOOKKEEPING = {"set_status", "load_plan", "record_delivery_attempt"}


def three_steps(webhook_url: str) -> dict:
    """research -> outline -> write, offline model, HTML only, one webhook."""
    body = definition(webhook_url)
    body["steps"] = [s for s in body["steps"] if s["id"] != "angles"]
    body["steps"][-1]["inputs"] = {"o": "steps.outline"}
    body["steps"][-1]["instructions"] = "Write using {{ o }}."
    return body


async def test_bookkeeping_takes_no_round_trip(tenant_a, temporal):
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        wf = await create_workflow(tenant_a.api, three_steps(hook.url))
        job_id = (await submit(tenant_a.api, wf["key"])).json()["job_id"]
        job = await wait_job(tenant_a.api, job_id)
        assert hook.wait_for_success(timeout=10) is not None
    assert job["status"] == "delivered", job
    assert job["deliveries"][0]["status"] == "delivered" and job["deliveries"][0]["attempts"] == 1

    events = [e async for e in temporal.get_workflow_handle(job_id).fetch_history_events()]
    kinds = Counter(e.event_type for e in events)
    scheduled = Counter(
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    )
    assert scheduled == {"run_step": 3, "render": 1, "send_webhook": 1}
    assert not BOOKKEEPING & set(scheduled)
    # queued, the running slot's claim, load_plan, processing, the attempt's record, delivered:
    # each a local activity's marker.
    markers = Counter(
        e.marker_recorded_event_attributes.marker_name for e in events if e.marker_recorded_event_attributes
    )
    assert markers["core_local_activity"] == 6, markers
    assert kinds[EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED] <= WORKFLOW_TASKS, kinds


def test_worker_import_leaves_unused_integrations_unloaded():
    # Vault's client (hvac) loads where Vault is configured; uvicorn and starlette
    # where the worker's listener is; twilio on the first SMS; the workflow module passed
    # through is loaded outside the sandbox, once.
    code = (
        "import sys; import worker; "
        "print(sorted(m for m in ('hvac', 'uvicorn', 'starlette', 'twilio') if m in sys.modules)); "
        "print(sorted(set(worker.SANDBOX_PASSTHROUGH) - set(sys.modules)))"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.split("\n")[:2] == ["[]", "[]"], out.stdout
