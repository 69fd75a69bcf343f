"""SubmissionWorkflow: steps in dependency order, render, deliver, with every transition
persisted by an activity. Workflow id = job id.

The bookkeeping (the status writes, loading the plan, recording a delivery attempt) runs as
local activities: in the worker, inside the workflow task that asks for it, so it costs no
round trip through the Temporal server. Runs recorded before LOCAL_BOOKKEEPING_PATCH ran
each as an activity of its own."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.delivery_log import DeliveryInput
    from activities.ingest import IngestActivities, IngestInput
    from activities.jobs import FailureInput, JobActivities, JobPlan, JobRef
    from activities.render import RenderActivities, RenderInput, RenderResult
    from activities.steps import StepActivities, StepFailureInput, StepInput, StepResult
    from schema.statuses import JobStatus
    from workflows import cancellation
    from workflows.budget_pause import BUDGET_SIGNAL, BudgetPause
    from workflows.delivery import SEND_PATCH, deliver_all, error_code, start_delivery
    from workflows.names import SUBMISSION
    from workflows.policies import (
        BUSY,
        BUSY_TYPES,
        DB_RETRY,
        DB_TIMEOUT,
        INGEST_HEARTBEAT,
        INGEST_RETRY,
        INGEST_TIMEOUT,
        RENDER_HEARTBEAT,
        RENDER_RETRY,
        RENDER_TIMEOUT,
        STEP_HEARTBEAT,
        STEP_RETRY,
        STEP_TIMEOUT,
        busy_delay,
        set_job_status,
    )
    from workflows.running_slot import SLOT_SIGNAL, SlotWait
    from workflows.types import STATUS, SubmissionInput, SubmissionResult

STATUS_PATCH = "status-search-attribute"
STEP_FAILURE_PATCH = "step-failure-recorded"
STEPS_CANCELLED_PATCH = "step-siblings-cancelled-recorded"
BUSY_PATCH = "template-pool-busy"
SLOTS_BUSY_PATCH = "tenant-slots-busy"
LOCAL_BOOKKEEPING_PATCH = "bookkeeping-local-activities"
T = TypeVar("T")


@workflow.defn(name=SUBMISSION)
class SubmissionWorkflow:
    def __init__(self) -> None:
        self._status: str = JobStatus.pending
        self._steps: dict[str, str] = {}
        self._stage: str | None = None
        self._requeue_busy = False
        self._busy_types: tuple[str, ...] = (BUSY,)
        self._running: dict[str, asyncio.Future[StepResult]] = {}  # the steps running now
        self._local = False  # bookkeeping as local activities (LOCAL_BOOKKEEPING_PATCH)
        self._slot = SlotWait()  # the wait for one of the tenant's running slots
        self._budget = BudgetPause()

    @workflow.signal(name=BUDGET_SIGNAL)
    def budget_changed(self) -> None:
        self._budget.changed()

    @workflow.signal(name=SLOT_SIGNAL)
    def running_slot_free(self) -> None:
        self._slot.wake()

    @workflow.query
    def progress(self) -> dict[str, object]:
        return {"status": self._status, "steps": dict(self._steps), "stage": self._stage}

    @workflow.run
    async def run(self, inp: SubmissionInput) -> SubmissionResult:
        job = JobRef(inp.tenant_id, inp.job_id)
        try:
            self._local = workflow.patched(LOCAL_BOOKKEEPING_PATCH)
            await self._set_status(inp, JobStatus.queued)
            await self._slot.take(inp.tenant_id, inp.job_id, local=self._local)
            load_plan = workflow.execute_local_activity_method if self._local else workflow.execute_activity_method
            plan = await load_plan(
                JobActivities.load_plan, job, start_to_close_timeout=DB_TIMEOUT, retry_policy=DB_RETRY
            )
            await self._set_status(inp, JobStatus.processing)
            if plan.input_url:
                await self._ingest(inp, plan.input_url)
            # Runs recorded before it retried a busy template pool as attempts (see _unless_busy).
            self._requeue_busy = workflow.patched(BUSY_PATCH)
            # Runs recorded before it knew only the template pool's busy code.
            if workflow.patched(SLOTS_BUSY_PATCH):
                self._busy_types = BUSY_TYPES
            await self._run_steps(inp, plan)
            artifact_ids = [await self._render(inp, kind) for kind in plan.outputs]
            webhook_ids = await self._deliver(inp, plan)
            await self._set_status(inp, JobStatus.delivered)
        # ApplicationError: a delivery target failed; CancelledError: the job was cancelled.
        except (ActivityError, ApplicationError, asyncio.CancelledError) as err:
            if cancellation.before_start(err):
                self._show_status(JobStatus.cancelled)
                return SubmissionResult(inp.job_id, JobStatus.cancelled)
            if cancellation.requested(err) and workflow.patched(cancellation.CANCEL_PATCH):
                await self._cancelled(inp)
                raise
            if isinstance(err, asyncio.CancelledError):
                raise
            code, message = error_code(err)
            await workflow.execute_activity_method(
                JobActivities.record_failure,
                FailureInput(inp.tenant_id, inp.job_id, code, message, self._stage),
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY,
            )
            self._show_status(JobStatus.failed)
            raise ApplicationError(
                f"job {inp.job_id} failed at {self._stage}: {code}: {message}", type=code, non_retryable=True
            ) from err
        return SubmissionResult(inp.job_id, JobStatus.delivered, artifact_ids, webhook_ids)

    async def _cancelled(self, inp: SubmissionInput) -> None:
        """The job was cancelled: the steps still running are cancelled (their LLM calls end at
        their next heartbeat), and the job and its open steps and deliveries say cancelled."""
        await cancellation.stop(self._running.values())
        self._steps.update({step: "cancelled" for step in self._running})
        await cancellation.mark_cancelled(inp.tenant_id, inp.job_id)
        self._show_status(JobStatus.cancelled)

    async def _set_status(self, inp: SubmissionInput, status: str) -> None:
        await set_job_status(inp.tenant_id, inp.job_id, status, local=self._local)
        self._show_status(status)

    def _show_status(self, status: str) -> None:
        self._status = status
        # Runs recorded before the Status search attribute existed replay without the upsert.
        if workflow.patched(STATUS_PATCH):
            workflow.upsert_search_attributes([STATUS.value_set(status)])

    async def _run_steps(self, inp: SubmissionInput, plan: JobPlan) -> None:
        deps = plan.dependencies
        done: set[str] = set()
        running = self._running
        retry = replace(STEP_RETRY, maximum_attempts=plan.step_max_attempts) if plan.step_max_attempts else STEP_RETRY
        retry = self._busy_policy(retry)
        while len(done) < len(deps):
            for step_id, needs in deps.items():
                ready = step_id not in done and step_id not in running and set(needs) <= done
                if ready and len(running) < plan.max_parallel_steps:
                    self._steps[step_id] = "running"
                    start = partial(
                        workflow.start_activity_method,
                        StepActivities.run_step,
                        StepInput(inp.tenant_id, inp.job_id, step_id),
                        start_to_close_timeout=STEP_TIMEOUT,
                        heartbeat_timeout=STEP_HEARTBEAT,
                        retry_policy=retry,
                    )
                    # A spent budget pauses the step (workflows/budget_pause.py).
                    paused = partial(self._budget.run, start, partial(self._set_status, inp))
                    running[step_id] = (
                        asyncio.ensure_future(self._unless_busy(paused)) if self._requeue_busy else start()
                    )
            finished, _ = await workflow.wait(running.values(), return_when="FIRST_COMPLETED")
            for step_id, handle in list(running.items()):
                if handle not in finished:
                    continue
                del running[step_id]
                if handle.exception() is not None:
                    self._steps[step_id] = "failed"
                    self._stage = f"step:{step_id}"
                    for other in running.values():
                        other.cancel()
                    await self._step_failed(inp, step_id, handle.exception())  # type: ignore[arg-type]  # done and failed: not None
                    await self._siblings_ended(inp, step_id, running)
                    raise handle.exception()  # type: ignore[misc]  # done and failed: not None
                self._steps[step_id] = "completed"
                done.add(step_id)

    async def _step_failed(self, inp: SubmissionInput, step_id: str, err: BaseException) -> None:
        """The step's row says failed with the last error, however its attempts ended (retries
        spent, a timeout, a non-retryable error). Runs recorded before this replay without it."""
        if workflow.patched(STEP_FAILURE_PATCH):
            code, message = error_code(err)
            await workflow.execute_activity_method(
                StepActivities.record_step_failure,
                StepFailureInput(inp.tenant_id, inp.job_id, step_id, f"{code}: {message}"),
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY,
            )

    async def _siblings_ended(
        self, inp: SubmissionInput, failed: str, running: dict[str, asyncio.Future[StepResult]]
    ) -> None:
        """The steps still running when `failed` failed were cancelled: each row says so, with
        why (or how the step ended, if it ended first). Runs recorded before this replay without it."""
        if not running or not workflow.patched(STEPS_CANCELLED_PATCH):
            return
        for step_id, handle in running.items():
            try:
                await handle
            except ActivityError as err:
                if not isinstance(err.cause, CancelledError):
                    self._steps[step_id] = "failed"
                    await self._step_failed(inp, step_id, err)
                    continue
            except asyncio.CancelledError:
                if not handle.cancelled():  # the workflow itself is being cancelled
                    raise
                # else: cancelled while it waited out a busy template pool, between attempts
            else:
                self._steps[step_id] = "completed"
                continue
            self._steps[step_id] = "cancelled"
            await workflow.execute_activity_method(
                StepActivities.record_step_failure,
                StepFailureInput(inp.tenant_id, inp.job_id, step_id, f"cancelled: step {failed!r} failed", "cancelled"),
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY,
            )

    async def _ingest(self, inp: SubmissionInput, url: str) -> None:
        self._stage = "ingest"
        await workflow.execute_activity_method(
            IngestActivities.ingest_input,
            IngestInput(inp.tenant_id, inp.job_id, url),
            start_to_close_timeout=INGEST_TIMEOUT,
            heartbeat_timeout=INGEST_HEARTBEAT,
            retry_policy=INGEST_RETRY,
        )

    async def _render(self, inp: SubmissionInput, kind: str) -> str:
        self._stage = f"render:{kind}"
        result: RenderResult = await self._unless_busy(
            partial(
                workflow.start_activity_method,
                RenderActivities.render,
                RenderInput(inp.tenant_id, inp.job_id, kind),
                start_to_close_timeout=RENDER_TIMEOUT,
                heartbeat_timeout=RENDER_HEARTBEAT,
                retry_policy=self._busy_policy(RENDER_RETRY),
            )
        )
        return result.artifact_id

    def _busy_policy(self, policy: RetryPolicy) -> RetryPolicy:
        if not self._requeue_busy:
            return policy
        return replace(policy, non_retryable_error_types=[*(policy.non_retryable_error_types or ()), *self._busy_types])

    async def _unless_busy(self, start: Callable[[], Awaitable[T]]) -> T:
        """A busy resource (the tenant's templates fill its share of the pool; every one of its
        LLM-call or render slots is held) is not a failed attempt: the policy hands the busy
        error back at once, and the activity is scheduled again after the delay it asked for,
        with all its attempts. Runs recorded before this let Temporal retry it as an attempt."""
        while True:
            try:
                return await start()
            except ActivityError as err:
                delay = busy_delay(err, self._busy_types) if self._requeue_busy else None
                if delay is None:
                    raise
                await workflow.sleep(delay)

    async def _deliver(self, inp: SubmissionInput, plan: JobPlan) -> list[str]:
        self._stage = "deliver"
        event_time = workflow.now().isoformat()
        if workflow.patched(SEND_PATCH):  # runs recorded before it sent and recorded in one activity
            results = await deliver_all(DeliveryInput(inp.tenant_id, inp.job_id, 0, event_time), plan, self._local)
            for i, result in enumerate(results):
                if isinstance(result, BaseException):
                    self._stage = f"deliver:{i}"
                    raise result
            return [r.webhook_id for r in results]  # type: ignore[union-attr]  # every exception was raised above
        handles = [
            start_delivery(DeliveryInput(inp.tenant_id, inp.job_id, i, event_time), plan)
            for i in range(plan.delivery_targets)
        ]
        ids = []
        for i, handle in enumerate(handles):
            self._stage = f"deliver:{i}"
            ids.append((await handle).webhook_id)
        return ids
