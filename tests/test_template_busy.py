"""A busy template pool (a tenant's templates fill its share) on the time-skipping test
server: the step or render activity gives its worker slot back with TemplatePoolBusy and
is scheduled again after the delay it asked for, without spending its attempts."""

import asyncio
import uuid
from datetime import datetime, timedelta

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.delivery_log import DeliveryInput, DeliveryResult
from activities.jobs import FailureInput, JobPlan, JobRef, JobStatusInput
from activities.render import RenderInput, RenderResult
from activities.steps import StepFailureInput, StepInput, StepResult
from tests.helpers import slot_granted
from workflows.submission import RENDER_RETRY, STEP_RETRY, SubmissionWorkflow
from workflows.types import SubmissionInput

BUSY_FOR = 15  # more than any policy's maximum_attempts
DELAY = timedelta(seconds=7)


class Busy:
    """run_step and render answer TemplatePoolBusy `busy` times each, then succeed (or fail
    with a retryable error `failing` times after that)."""

    def __init__(self, env: WorkflowEnvironment, busy: int, failing: int = 0) -> None:
        self.env, self.busy, self.failing = env, busy, failing
        self.calls: dict[str, list[tuple[int, datetime]]] = {"run_step": [], "render": []}
        self.failed: list[FailureInput] = []

    async def _maybe_busy(self, name: str) -> None:
        calls = self.calls[name]
        calls.append((activity.info().attempt, await self.env.get_current_time()))
        if len(calls) <= self.busy:
            raise ApplicationError("busy", type="TemplatePoolBusy", next_retry_delay=DELAY)
        if len(calls) <= self.busy + self.failing:
            raise ApplicationError("flaky", type="LLMTransient")

    @activity.defn(name="load_plan")
    async def load_plan(self, ref: JobRef) -> JobPlan:
        return JobPlan({"a": []}, ["html"], 0, 4)

    @activity.defn(name="set_status")
    async def set_status(self, inp: JobStatusInput) -> None:
        pass

    @activity.defn(name="record_failure")
    async def record_failure(self, inp: FailureInput) -> None:
        self.failed.append(inp)

    @activity.defn(name="record_step_failure")
    async def record_step_failure(self, inp: StepFailureInput) -> None:
        pass

    @activity.defn(name="run_step")
    async def run_step(self, inp: StepInput) -> StepResult:
        await self._maybe_busy("run_step")
        return StepResult(inp.step_id, f"k/{inp.step_id}", "offline", 1, 1, 0.0)

    @activity.defn(name="render")
    async def render(self, inp: RenderInput) -> RenderResult:
        await self._maybe_busy("render")
        return RenderResult("art-1", "k/report.html", 10)

    @activity.defn(name="deliver_webhook")
    async def deliver_webhook(self, inp: DeliveryInput) -> DeliveryResult:
        raise AssertionError("no delivery targets")

    def all(self) -> list:
        return [
            self.load_plan,
            self.set_status,
            slot_granted,
            self.record_failure,
            self.record_step_failure,
            self.run_step,
            self.render,
            self.deliver_webhook,
        ]


async def run(env: WorkflowEnvironment, fakes: Busy):
    queue = f"tq-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=queue, workflows=[SubmissionWorkflow], activities=fakes.all()):
        handle = await env.client.start_workflow(
            SubmissionWorkflow.run,
            SubmissionInput("t-1", f"job-{uuid.uuid4()}"),
            id=f"wf-{uuid.uuid4()}",
            task_queue=queue,
        )
        try:
            return await handle.result()
        finally:  # its history, busy waits and all, replays: the waits are deterministic
            await Replayer(workflows=[SubmissionWorkflow]).replay_workflow(await handle.fetch_history())


async def test_busy_waits_do_not_spend_attempts(env):
    assert BUSY_FOR > max(STEP_RETRY.maximum_attempts, RENDER_RETRY.maximum_attempts)
    fakes = Busy(env, busy=BUSY_FOR)
    result = await run(env, fakes)
    assert result.status == "delivered", fakes.failed
    for name, calls in fakes.calls.items():
        assert len(calls) == BUSY_FOR + 1, (name, calls)
        # Every busy answer ended the activity; each was scheduled again as a first attempt...
        assert [attempt for attempt, _ in calls] == [1] * (BUSY_FOR + 1), (name, calls)
        # ...no sooner than the delay the busy error asked for.
        gaps = [(b - a) for (_, a), (_, b) in zip(calls, calls[1:], strict=False)]
        assert min(gaps) >= DELAY - timedelta(milliseconds=50), (name, gaps)


async def test_after_busy_waits_a_step_keeps_its_whole_retry_budget(env):
    # Busy, then failing: the step still gets STEP_RETRY's attempts for the real failures.
    fakes = Busy(env, busy=3, failing=STEP_RETRY.maximum_attempts)
    with pytest.raises(WorkflowFailureError):
        await run(env, fakes)
    attempts = [attempt for attempt, _ in fakes.calls["run_step"]]
    assert attempts == [1, 1, 1, *range(1, STEP_RETRY.maximum_attempts + 1)], attempts
    assert fakes.failed and fakes.failed[0].error_code == "LLMTransient"


class BusyAndBroken(Busy):
    """Steps a and b run in parallel: a is busy every time, b fails for good; a, waiting out
    its busy pool, is cancelled with the job."""

    @activity.defn(name="load_plan")
    async def load_plan(self, ref: JobRef) -> JobPlan:
        return JobPlan({"a": [], "b": []}, ["html"], 0, 4)

    @activity.defn(name="run_step")
    async def run_step(self, inp: StepInput) -> StepResult:
        if inp.step_id == "a":
            await self._maybe_busy("run_step")
            raise AssertionError("a is busy every time")
        for _ in range(300):  # until a has waited out a busy pool once (real time: b is running)
            if len(self.calls["run_step"]) >= 2:
                break
            await asyncio.sleep(0.1)
        raise ApplicationError("refused", type="LLMRefused", non_retryable=True)

    def all(self) -> list:
        return [
            self.load_plan,
            self.set_status,
            slot_granted,
            self.record_failure,
            self.record_step_failure,
            self.run_step,
            self.render,
            self.deliver_webhook,
        ]


async def test_a_step_waiting_out_a_busy_pool_is_cancelled_with_its_job(env):
    fakes = BusyAndBroken(env, busy=1000)
    with pytest.raises(WorkflowFailureError):
        await run(env, fakes)
    assert fakes.failed and fakes.failed[0].error_code == "LLMRefused" and fakes.failed[0].failed_step == "step:b"
    assert len(fakes.calls["run_step"]) >= 2  # a was busy, waited, and was scheduled again
