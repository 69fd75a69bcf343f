"""Delivery backoff, on the time-skipping test server: the workflow logic with stand-in
activities (registered under the real activity names). The workflow drives a target's
retries itself (send, record, durable timer), on WEBHOOK_RETRY's schedule."""

import time
import uuid
from datetime import datetime

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.delivery_log import AttemptInput, DeliveryInput, SendOutcome
from activities.jobs import FailureInput, JobPlan, JobRef, JobStatusInput
from activities.render import RenderInput, RenderResult
from activities.steps import StepInput, StepResult
from tests.helpers import slot_granted
from workflows.delivery import WEBHOOK_RETRY
from workflows.submission import SubmissionWorkflow
from workflows.types import SubmissionInput


class FakeActivities:
    def __init__(self, env: WorkflowEnvironment, failures_before_success: int) -> None:
        self.env, self.failures = env, failures_before_success
        self.attempt_times: list[datetime] = []
        self.statuses: list[str] = []
        self.failed: list[FailureInput] = []
        self.recorded: list[AttemptInput] = []

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

    @activity.defn(name="send_webhook")
    async def send_webhook(self, inp: DeliveryInput) -> SendOutcome:
        self.attempt_times.append(await self.env.get_current_time())  # the server's, skipped, clock
        if len(self.attempt_times) <= self.failures:
            return SendOutcome(
                "d-1",
                "msg_1",
                0,
                status_code=503,
                error="answered 503",
                error_type="WebhookUnavailable",
                retryable=True,
            )
        return SendOutcome("d-1", "msg_1", 0, status_code=204)

    @activity.defn(name="record_delivery_attempt")
    async def record_delivery_attempt(self, inp: AttemptInput) -> int:
        self.recorded.append(inp)
        return inp.attempt

    def all(self) -> list:
        return [
            self.load_plan,
            self.set_status,
            slot_granted,
            self.record_failure,
            self.run_step,
            self.render,
            self.send_webhook,
            self.record_delivery_attempt,
        ]


async def run(env: WorkflowEnvironment, fakes: FakeActivities):
    queue = f"tq-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=queue, workflows=[SubmissionWorkflow], activities=fakes.all()):
        return await env.client.execute_workflow(
            SubmissionWorkflow.run,
            SubmissionInput("t-1", f"job-{uuid.uuid4()}"),
            id=f"wf-{uuid.uuid4()}",
            task_queue=queue,
        )


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
    # Every attempt recorded once, numbered in order; the last one delivered it.
    assert [(r.attempt, r.status_code, r.final) for r in fakes.recorded] == [
        *((n, 503, False) for n in range(1, 6)),
        (6, 204, False),
    ]


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
    # The last attempt's record marks the target failed, with its error.
    assert [r.final for r in fakes.recorded] == [False] * 9 + [True]
    assert fakes.recorded[-1].error == "answered 503" and "after 10 attempts" in fakes.failed[0].message


class DatabaseDownActivities(FakeActivities):
    """send_webhook fails before it sends, as it does while PostgreSQL is down (the target's
    row cannot be read), for `outage` calls: longer than any fixed number of attempts."""

    def __init__(self, env: WorkflowEnvironment, outage: int) -> None:
        super().__init__(env, failures_before_success=0)
        self.outage, self.calls = outage, 0

    @activity.defn(name="send_webhook")
    async def send_webhook(self, inp: DeliveryInput) -> SendOutcome:
        self.calls += 1
        if self.calls <= self.outage:
            raise ConnectionRefusedError("the database is down")
        return SendOutcome("d-1", "msg_1", 0, status_code=204)


async def test_a_long_database_outage_before_the_send_is_waited_out(env):
    # 15 failed calls: about 10 min on SEND_RETRY's schedule (1 s doubling, capped at 1 min).
    fakes = DatabaseDownActivities(env, outage=15)
    result = await run(env, fakes)
    assert result.status == "delivered", result
    assert fakes.calls == 16 and fakes.failed == []
    assert [(r.attempt, r.status_code) for r in fakes.recorded] == [(1, 204)]
