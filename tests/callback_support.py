"""A state machine that asks for an approval through a callback Task, for the task-token tests:
its http binding is the task service stand-in's `approve` route, which receives the token."""

import asyncio
import uuid
from typing import Any

import httpx

from devstack.task_service import TaskService
from tests.helpers import create_workflow, submit


def approval_machine(url: str, key: str | None = None) -> dict[str, Any]:
    ask = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {
            "FunctionName": "RequestApproval",
            "Payload": {"token.$": "$$.Task.Token", "order.$": "$.order"},
        },
        "ResultPath": "$.decision",
        "Catch": [{"ErrorEquals": ["Rejected"], "ResultPath": "$.rejection", "Next": "Declined"}],
        "Next": "Approved",
    }
    return {
        "key": key or f"approve-{uuid.uuid4().hex[:8]}",
        "kind": "state_machine",
        "state_machine": {
            "StartAt": "Ask",
            "States": {
                "Ask": ask,
                "Approved": {"Type": "Pass", "End": True},
                "Declined": {"Type": "Pass", "Result": "declined", "ResultPath": "$.outcome", "End": True},
            },
        },
        "resources": [{"function": "RequestApproval", "http": {"url": f"{url}/approve"}}],
    }


async def start_approval(api: httpx.AsyncClient, svc: TaskService, order: int) -> tuple[str, str]:
    """(job id, task token): the job submitted, and the token its request carried."""
    body = approval_machine(svc.url)
    await create_workflow(api, body)
    resp = await submit(api, body["key"], {"order": order})
    assert resp.status_code == 202, resp.text
    return resp.json()["job_id"], await token_sent(svc, order)


async def token_sent(svc: TaskService, order: int, timeout: float = 60) -> str:
    for _ in range(int(timeout * 10)):
        for call in svc.calls_to("approve"):
            if isinstance(call.body, dict) and call.body.get("order") == order:
                return str(call.body["token"])
        await asyncio.sleep(0.1)
    raise AssertionError(f"no approval request for order {order} in {timeout}s")
