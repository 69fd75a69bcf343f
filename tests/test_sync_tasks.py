"""Run-and-wait (.sync) Tasks of other services on the session stack: in "answer" mode the
endpoint answers when the work is done (after a delay longer than HeartbeatSeconds: the
activity heartbeats meanwhile) and its JSON is the result; in "callback" mode it answers 202
with the task token in the Lodestone-Task-Token header, and the job ends with what
POST /v1/task-tokens/{token}/success posted, or is caught by the failure's name. A binding that
names no mode is refused (422 sync_mode_required)."""

import asyncio
import time
import uuid
from typing import Any

from devstack.task_service import TaskService
from tests.helpers import create_workflow, submit, wait_job

GLUE = "arn:aws:states:::glue:startJobRun.sync"
DONE = {"JobRunState": "SUCCEEDED", "Id": "jr_1", "ExecutionTime": 2}


def _definition(url: str, sync: str | None) -> dict[str, Any]:
    http: dict[str, Any] = {"url": f"{url}/glue"}
    if sync is not None:
        http["sync"] = sync
    run = {
        "Type": "Task",
        "Resource": GLUE,
        "Parameters": {"JobName.$": "$.job"},
        "TimeoutSeconds": 30,
        "HeartbeatSeconds": 1,
        "ResultSelector": {"state.$": "$.JobRunState", "id.$": "$.Id"},
        "ResultPath": "$.run",
        "Catch": [{"ErrorEquals": ["Glue.JobFailed"], "ResultPath": "$.failure", "Next": "Failed"}],
        "End": True,
    }
    return {
        "key": f"glue-{uuid.uuid4().hex[:8]}",
        "kind": "state_machine",
        "state_machine": {
            "StartAt": "Run",
            "States": {
                "Run": run,
                "Failed": {"Type": "Pass", "Result": "failed", "ResultPath": "$.outcome", "End": True},
            },
        },
        "resources": [{"resource": GLUE, "http": http}],
    }


async def _start(api: Any, svc: TaskService, sync: str, job: str) -> str:
    body = _definition(svc.url, sync)
    await create_workflow(api, body)
    resp = await submit(api, body["key"], {"job": job})
    assert resp.status_code == 202, resp.text
    return str(resp.json()["job_id"])


async def _token_sent(svc: TaskService, job: str, timeout: float = 60) -> str:
    for _ in range(int(timeout * 10)):
        for call in svc.calls_to("glue"):
            if call.body == {"JobName": job}:
                return call.headers["lodestone-task-token"]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no request for {job} in {timeout}s")


def _slow(body: Any) -> Any:
    time.sleep(2.5)  # longer than HeartbeatSeconds (1 s): the waiting activity heartbeats
    return DONE


async def test_an_answer_mode_task_waits_for_the_endpoint_to_finish_the_work(tenant_a):
    with TaskService(tenant_a.webhook_secret, {"glue": _slow}) as svc:
        job_id = await _start(tenant_a.api, svc, "answer", "nightly")
        job = await wait_job(tenant_a.api, job_id)
        calls = svc.calls_to("glue")
    assert job["status"] == "succeeded", job
    assert job["output"] == {"job": "nightly", "run": {"state": "SUCCEEDED", "id": "jr_1"}}
    assert len(calls) == 1 and calls[0].verified and calls[0].body == {"JobName": "nightly"}
    assert "lodestone-task-token" not in calls[0].headers


async def test_a_callback_mode_task_ends_with_what_the_token_reported(tenant_a):
    with TaskService(tenant_a.webhook_secret, {"glue": [(202, {"JobRunId": "jr_2"})]}) as svc:
        job_id = await _start(tenant_a.api, svc, "callback", "weekly")
        token = await _token_sent(svc, "weekly")
        for _ in range(3):  # HeartbeatSeconds is 1 s: the reporter's heartbeats keep it waiting
            beat = await tenant_a.api.post(f"/v1/task-tokens/{token}/heartbeat")
            assert beat.status_code == 200, beat.text
            await asyncio.sleep(0.5)
        ok = await tenant_a.api.post(f"/v1/task-tokens/{token}/success", json={"output": {**DONE, "Id": "jr_2"}})
        assert ok.status_code == 200, ok.text
        job = await wait_job(tenant_a.api, job_id)
    assert job["status"] == "succeeded", job
    assert job["output"] == {"job": "weekly", "run": {"state": "SUCCEEDED", "id": "jr_2"}}
    again = await tenant_a.api.post(f"/v1/task-tokens/{token}/success", json={"output": DONE})
    assert again.status_code == 409 and again.json()["code"] == "task_token_used"


async def test_a_callback_mode_failure_is_caught_by_its_name(tenant_a):
    with TaskService(tenant_a.webhook_secret, {"glue": [(202, {})]}) as svc:
        job_id = await _start(tenant_a.api, svc, "callback", "monthly")
        token = await _token_sent(svc, "monthly")
        failed = {"error": "Glue.JobFailed", "cause": "out of memory"}
        resp = await tenant_a.api.post(f"/v1/task-tokens/{token}/failure", json=failed)
        assert resp.status_code == 200, resp.text
        job = await wait_job(tenant_a.api, job_id)
    assert job["status"] == "succeeded", job
    assert job["output"] == {
        "job": "monthly",
        "failure": {"Error": "Glue.JobFailed", "Cause": "out of memory"},
        "outcome": "failed",
    }


async def test_a_binding_that_names_no_mode_is_refused(tenant_a):
    resp = await tenant_a.api.post("/v1/workflows", json=_definition("https://svc.example.com", None))
    assert resp.status_code == 422, resp.text
    problem = resp.json()
    assert (problem["code"], problem["pointer"]) == ("sync_mode_required", "/state_machine/States/Run/Resource")
    assert '"sync": "answer"' in problem["detail"] and '"sync": "callback"' in problem["detail"]
