"""Callback Tasks on the session stack: a machine's lambda:invoke.waitForTaskToken sends its
request (with the token, signed) to the tenant's service, waits, and the job ends with what
POST /v1/task-tokens/{token}/success posted; a failure is caught by its name; a token works
once (409 after), not for another tenant, and a forged one is not found (404)."""

import uuid

from devstack.task_service import TaskService
from tests.callback_support import start_approval
from tests.helpers import wait_job


async def test_a_posted_success_is_the_tasks_result_and_the_token_works_once(tenant_a, tenant_b):
    with TaskService(tenant_a.webhook_secret, {"approve": [{"queued": True}]}) as svc:
        job_id, token = await start_approval(tenant_a.api, svc, order=101)
        assert svc.calls_to("approve")[0].verified

        beat = await tenant_a.api.post(f"/v1/task-tokens/{token}/heartbeat")
        assert beat.status_code == 200, beat.text
        assert beat.json() == {"job_id": job_id, "state": "Ask", "path": "Ask", "attempt": 1, "status": "waiting"}

        foreign = await tenant_b.api.post(f"/v1/task-tokens/{token}/success", json={"output": {"by": "mallory"}})
        assert foreign.status_code == 404, foreign.text
        forged = await tenant_a.api.post(f"/v1/task-tokens/tt1.{uuid.uuid4().hex}/success", json={"output": 1})
        assert forged.status_code == 404, forged.text

        ok = await tenant_a.api.post(f"/v1/task-tokens/{token}/success", json={"output": {"by": "ana"}})
        assert ok.status_code == 200, ok.text
        assert ok.json()["status"] == "succeeded"
        job = await wait_job(tenant_a.api, job_id)
    assert job["status"] == "succeeded", job
    assert job["output"] == {"order": 101, "decision": {"by": "ana"}}

    again = await tenant_a.api.post(f"/v1/task-tokens/{token}/success", json={"output": {"by": "eve"}})
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "task_token_used"
    late = await tenant_a.api.post(f"/v1/task-tokens/{token}/failure", json={"error": "Rejected"})
    assert late.status_code == 409 and late.json()["code"] == "task_token_used"


async def test_a_posted_failure_is_caught_by_its_error_name(tenant_a):
    with TaskService(tenant_a.webhook_secret, {"approve": [{"queued": True}]}) as svc:
        job_id, token = await start_approval(tenant_a.api, svc, order=202)
        resp = await tenant_a.api.post(
            f"/v1/task-tokens/{token}/failure", json={"error": "Rejected", "cause": "over budget"}
        )
        assert resp.status_code == 200, resp.text
        job = await wait_job(tenant_a.api, job_id)
    assert job["status"] == "succeeded", job
    assert job["output"] == {
        "order": 202,
        "rejection": {"Error": "Rejected", "Cause": "over budget"},
        "outcome": "declined",
    }
    caught = [(e["state"], e["error"], e["next"]) for e in job["path"] if e["kind"] == "caught"]
    assert caught == [("Ask", "Rejected", "Declined")]
