"""Delivery backoff, on the time-skipping test server: the workflow logic with stand-in
activities (registered under the real activity names)."""

import time
import uuid
from datetime import datetime

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from lodestone.devstack.processes import venv_bin
from workflows.submission import WEBHOOK_RETRY, SubmissionWorkflow
from workflows.types import (
    STATUS,
    DeliveryInput,
    DeliveryResult,
    FailureInput,
    JobPlan,
    JobRef,
    JobStatusInput,
    RenderInput,
    RenderResult,
    StepInput,
    StepResult,
    SubmissionInput,
)


class FakeActivities:
    def __init__(self, env: WorkflowEnvironment, failures_before_success: int) -> None:
        self.env, self.failures = env, failures_before_success
        self.attempt_times: list[datetime] = []
        self.statuses: list[str] = []
        self.failed: list[FailureInput] = []

    @activity.defn(name="load_plan")
    async def load_plan(self, ref: JobRef) -> JobPlan:
        return JobPlan({"a": [], "b": ["a"]}, ["html"], 1, 4)

    @activity.defn(name="set_status")
    async def set_status(self, inp: JobStatusInput) -> None:
        self.statuses.append(inp.status)

    @activity.defn(name="record_failure")
    async def record_failure(self, inp: FailureInput) -> None:
        self.failed.append(inp)

    @activity.defn(name="run_step")
    async def run_step(self, inp: StepInput) -> StepResult:
        return StepResult(inp.step_id, f"k/{inp.step_id}", "offline", 1, 1, 0.0)

    @activity.defn(name="render")
    async def render(self, inp: RenderInput) -> RenderResult:
        return RenderResult("art-1", "k/report.html", 10)

    @activity.defn(name="deliver_webhook")
    async def deliver_webhook(self, inp: DeliveryInput) -> DeliveryResult:
        info = activity.info()
        self.attempt_times.append(await self.env.get_current_time())  # the server's, skipped, clock
        if info.attempt <= self.failures:
            raise ApplicationError("receiver answered 503", type="WebhookUnavailable")
        return DeliveryResult("d-1", "msg_1", info.attempt, 204)

    def all(self) -> list:
        return [self.load_plan, self.set_status, self.record_failure, self.run_step, self.render,
                self.deliver_webhook]


@pytest.fixture(scope="module")
async def env():
    async with await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=venv_bin("temporal-test-server")) as env:
        # The workflow keeps its JobStatus search attribute current; this server needs it registered.
        await env.client.operator_service.add_search_attributes(AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={STATUS.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD}))
        yield env


async def run(env: WorkflowEnvironment, fakes: FakeActivities):
    queue = f"tq-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=queue, workflows=[SubmissionWorkflow], activities=fakes.all()):
        return await env.client.execute_workflow(
            SubmissionWorkflow.run, SubmissionInput("t-1", f"job-{uuid.uuid4()}"), id=f"wf-{uuid.uuid4()}",
            task_queue=queue)


async def test_backoff_doubles_between_attempts(env):
    fakes = FakeActivities(env, failures_before_success=5)
    started = time.monotonic()
    result = await run(env, fakes)
    wall = time.monotonic() - started
    assert result.status == "delivered" and fakes.statuses == ["queued", "processing", "delivered"]
    gaps = [(b - a).total_seconds() for a, b in zip(fakes.attempt_times, fakes.attempt_times[1:], strict=False)]
    assert len(gaps) == 5
    expected = [1, 2, 4, 8, 16]
    for gap, want in zip(gaps, expected, strict=True):
        assert want <= gap < want + 1.5, gaps
    assert wall < sum(expected)  # time was skipped, not slept


async def test_delivery_gives_up_after_retry_budget(env):
    fakes = FakeActivities(env, failures_before_success=100)
    with pytest.raises(WorkflowFailureError):
        await run(env, fakes)
    assert len(fakes.attempt_times) == WEBHOOK_RETRY.maximum_attempts
    assert fakes.failed and fakes.failed[0].error_code == "WebhookUnavailable"
    assert fakes.failed[0].failed_step == "deliver:0"
    # The capped interval: no gap exceeds the policy's maximum.
    gaps = [(b - a).total_seconds() for a, b in zip(fakes.attempt_times, fakes.attempt_times[1:], strict=False)]
    assert max(gaps) <= WEBHOOK_RETRY.maximum_interval.total_seconds() + 1.5
