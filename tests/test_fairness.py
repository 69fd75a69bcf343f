"""Fair dispatch between tenants, and the priority a submission names, on the session's Temporal dev server
(started with matching.enableFairness, devstack/temporal.py): jobs submitted through the API
onto a task queue of the test's own, with no worker until the backlog is in; then a worker
whose SubmissionWorkflow stand-in only notes the order its jobs run in."""

import asyncio
import time
import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.helpers import create_workflow, definition, in_process_api
from workflows import names
from workflows.types import SubmissionInput

ORDER: list[str] = []  # job ids, in the order the stand-in's activity ran them


@activity.defn(name="fairness_test_note")
async def note(job_id: str) -> None:
    ORDER.append(job_id)


@workflow.defn(name=names.SUBMISSION)
class NotingSubmission:
    @workflow.run
    async def run(self, inp: SubmissionInput) -> None:
        await workflow.execute_activity(note, inp.job_id, start_to_close_timeout=timedelta(seconds=30))


async def submit_many(api, key: str, n: int, priority: int | None = None) -> list[str]:  # type: ignore[no-untyped-def]
    ids = []
    for i in range(n):
        body = {"workflow_key": key, "input": {"company": f"c{i}"}}
        if priority is not None:
            body["priority"] = priority
        resp = await api.post("/v1/submissions", json=body)
        assert resp.status_code == 202, resp.text
        ids.append(resp.json()["job_id"])
    return ids


async def run_backlog(temporal, queue: str, expected: int, timeout: float = 45) -> list[str]:  # type: ignore[no-untyped-def]
    """Start a worker on `queue`, one workflow and one activity at a time, until it has run
    `expected` jobs; the order it ran them in."""
    ORDER.clear()
    async with Worker(
        temporal,
        task_queue=queue,
        workflows=[NotingSubmission],
        activities=[note],
        max_concurrent_workflow_tasks=2,
        max_concurrent_activities=1,
        max_concurrent_activity_task_polls=1,
        workflow_runner=UnsandboxedWorkflowRunner(),  # this module imports the API, past the sandbox
    ):
        deadline = time.monotonic() + timeout
        while len(ORDER) < expected:
            assert time.monotonic() < deadline, f"{len(ORDER)} of {expected} jobs ran in {timeout}s"
            await asyncio.sleep(0.1)
    return list(ORDER)


@pytest.fixture
def queue_settings(settings):  # type: ignore[no-untyped-def]
    return settings.model_copy(
        update={"temporal_task_queue": f"fairness-{uuid.uuid4().hex[:8]}", "submissions_per_minute": 100_000}
    )


async def test_a_light_tenants_job_is_dispatched_before_a_heavy_tenants_backlog(
    queue_settings, temporal, tenant_a, tenant_b
):  # type: ignore[no-untyped-def]
    backlog = 60
    tokens = (tenant_a.token_for(queue_settings, "admin"), tenant_b.token_for(queue_settings, "admin"))
    async with (
        in_process_api(queue_settings, tokens[0]) as api_a,
        in_process_api(queue_settings, tokens[1]) as api_b,
    ):
        key_a = (await create_workflow(api_a, definition("http://127.0.0.1:9/hook")))["key"]
        key_b = (await create_workflow(api_b, definition("http://127.0.0.1:9/hook")))["key"]
        a_jobs = await submit_many(api_a, key_a, backlog)
        b_jobs = await submit_many(api_b, key_b, 3)  # after all of A's
    order = await run_backlog(temporal, queue_settings.temporal_task_queue, backlog + 3)
    b_at = sorted(order.index(j) for j in b_jobs)
    # FIFO would run them last (60-62); fair dispatch alternates A and B within the one priority.
    assert b_at[-1] < backlog // 2, f"B's jobs ran at {b_at} of {len(order)}"
    assert set(order) == set(a_jobs) | set(b_jobs)


async def test_a_jobs_workflow_starts_with_its_tenant_as_fairness_key_and_no_priority_key(
    queue_settings, temporal, tenant_a
):  # type: ignore[no-untyped-def]
    # A job's priority orders its tenant's jobs waiting for a running slot
    # (tests/test_running_limit.py); as Temporal's priority key it would order every tenant's.
    async with in_process_api(queue_settings, tenant_a.token_for(queue_settings, "admin")) as api:
        key = (await create_workflow(api, definition("http://127.0.0.1:9/hook")))["key"]
        [high] = await submit_many(api, key, 1, priority=1)
        assert (await api.get(f"/v1/jobs/{high}")).json()["priority"] == 1
    started = await temporal.get_workflow_handle(high).describe()
    priority = started.raw_description.workflow_execution_info.priority
    assert (priority.priority_key, priority.fairness_key) == (0, str(tenant_a.id))
    await temporal.get_workflow_handle(high).terminate("test done")


@pytest.mark.parametrize("bad", [0, 6, "2", True, 2.5, None])
async def test_a_priority_outside_1_to_5_or_not_an_integer_is_422(settings, tenant_a, bad):  # type: ignore[no-untyped-def]
    body = {"workflow_key": "whatever", "input": {}, "priority": bad}
    if bad is None:  # null: as if left out, then the unknown workflow is what is wrong
        resp = await tenant_a.api.post("/v1/submissions", json=body)
        assert resp.status_code == 404, resp.text
        return
    resp = await tenant_a.api.post("/v1/submissions", json=body)
    assert resp.status_code == 422, resp.text
    assert "priority" in resp.text


async def test_a_job_without_a_priority_has_3_and_its_idempotency_hash_is_unchanged(queue_settings, tenant_a):  # type: ignore[no-untyped-def]
    from api.bodies import SubmissionCreate
    from services.submissions import request_hash

    body = SubmissionCreate(workflow_key="k", input={"a": 1})
    assert "priority" not in body.request()  # keys committed before priorities still match their bodies
    assert request_hash(body.request()) == request_hash(
        {"workflow_key": "k", "input": {"a": 1}, "input_upload_id": None, "input_url": None}
    )
    async with in_process_api(queue_settings, tenant_a.token_for(queue_settings, "admin")) as api:  # no worker
        key = (await create_workflow(api, definition("http://127.0.0.1:9/hook")))["key"]
        resp = await api.post("/v1/submissions", json={"workflow_key": key, "input": {"company": "x"}})
        job = (await api.get(f"/v1/jobs/{resp.json()['job_id']}")).json()
    assert job["priority"] == 3
