"""StateMachineWorkflow: a tenant's Amazon States Language definition, interpreted in
workflow code by lodestone.asl.machine. Pass, Choice, Wait, Succeed, Fail, Parallel, Map and
all data flow run here with no round trip; each Task attempt is one `run_machine_task`
activity, and each Retry interval and Wait one durable timer. Workflow id = job id."""

import asyncio
import hashlib
from dataclasses import fields, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    TimeoutError,
    TimeoutType,
)

with workflow.unsafe.imports_passed_through():
    # The ASL libraries import these lazily, which the sandbox cannot do: bring them in here.
    import jsonata  # noqa: F401
    import jsonata.functions  # noqa: F401
    import jsonata.jsonata  # noqa: F401
    import jsonpath_ng._ply_tables.ext_lexer_table  # noqa: F401
    import jsonpath_ng._ply_tables.ext_parser_table  # noqa: F401
    import jsonpath_ng.ext.parser  # noqa: F401

    from activities.jobs import JobRef
    from activities.machine_callbacks import IssueTaskTokenInput
    from activities.machine_jobs import MachineEventsInput, MachineFinishInput, MachineJobActivities, MachinePlan
    from activities.machine_tasks import MachineTaskActivities, MachineTaskInput
    from activities.machine_values import clip
    from lodestone.asl import errors as asl_errors
    from lodestone.asl.functions import Sources
    from lodestone.asl.machine import Event, Outcome, TaskCall
    from lodestone.asl.machine_distributed import DistributedMap
    from lodestone.asl.sync_mode import CALLBACK, mode
    from schema.statuses import JobStatus
    from workflows import cancellation, machine_children
    from workflows.budget_pause import BUDGET_SIGNAL, BudgetPause, activity_ids
    from workflows.machine_callbacks import TASK_TOKEN_SIGNAL, CallbackWaits, TaskTokenSignal
    from workflows.machine_map_run import run_distributed_map
    from workflows.names import STATE_MACHINE
    from workflows.policies import (
        DB_RETRY,
        DB_TIMEOUT,
        MACHINE_TASK_HEARTBEAT,
        MACHINE_TASK_RETRY,
        MACHINE_TASK_TIMEOUT,
        set_job_status,
    )
    from workflows.running_slot import SLOT_SIGNAL, SlotWait
    from workflows.types import STATUS, MachineResult, SubmissionInput

FLUSH_EVERY = timedelta(seconds=1)  # the least time between two writes of the path before a Task
ACTIVITY_ID_MAX = 200


class _Runtime:
    """What the interpreter sees of Temporal: Tasks as activities, sleeps as timers, the
    workflow's deterministic clock, random numbers and UUIDs."""

    def __init__(self, wf: "StateMachineWorkflow", inp: SubmissionInput, plan: MachinePlan) -> None:
        self.wf, self.inp, self.plan = wf, inp, plan
        rng = workflow.random()
        self.sources = Sources(
            random=rng.random,
            uuid=lambda: str(workflow.uuid4()),
            now_millis=lambda: int(workflow.now().timestamp() * 1000),
        )

    def now(self) -> datetime:
        return workflow.now()

    def record(self, event: Event) -> None:
        self.wf.record(event, self.plan.path_value_max_bytes)

    async def sleep(self, seconds: float) -> None:
        await self.wf.flush(self.inp, force=True)
        if seconds > 0:
            await workflow.sleep(seconds)

    async def task_token(self, state: str, path: str, attempt: int) -> str:
        run_id = workflow.info().run_id
        return await self.wf.callbacks.issue(
            IssueTaskTokenInput(self.inp.tenant_id, self.inp.job_id, run_id, path, attempt, state)
        )

    async def run_task(self, call: TaskCall) -> Any:
        try:
            return await self._run_task(call)
        except Exception as err:
            # Once the job is cancelled, no Task's end is the state's: a child's run that ended
            # cancelled, or any failure meanwhile, is not retried or caught.
            if workflow.cancellation_reason() is not None and workflow.patched(cancellation.CANCEL_PATCH):
                raise asyncio.CancelledError() from err
            raise

    async def _run_task(self, call: TaskCall) -> Any:
        if not call.callback and mode(call.resource, call.payload, self.plan.bindings) == CALLBACK:
            # A run-and-wait Task whose endpoint answers at once and reports the work's end
            # with the task token (lodestone/asl/sync_mode.py): a callback Task's wait.
            token = await self.task_token(call.state, call.path, call.attempt)
            call = replace(call, callback=True, token=token)
        if call.callback and call.token is not None:
            # The request goes out as any Task's (its answer is not the result); the machine's
            # HeartbeatSeconds and TimeoutSeconds bound the wait that follows.
            await self._run_activity(replace(call, heartbeat_seconds=None))
            return await self.wf.callbacks.outcome(
                self.inp.tenant_id, call.token, call.timeout_seconds, call.heartbeat_seconds
            )
        if machine_children.is_child(call, self.plan.bindings):
            await self.wf.flush(self.inp)
            return await machine_children.run_child(self.inp, call)
        return await self._run_activity(call)

    async def distributed_map(self, spec: DistributedMap) -> Any:
        await self.wf.flush(self.inp, force=True)
        return await run_distributed_map(self.inp.tenant_id, self.inp.job_id, self.plan.bindings, spec)

    async def _run_activity(self, call: TaskCall) -> Any:
        await self.wf.flush(self.inp)
        # The path is unique in the run (a state entered again is "Name@2"), so each visit's
        # deliveries, artifacts and usage rows are its own, and so is each attempt's activity.
        path = call.path
        timeout = timedelta(seconds=call.timeout_seconds) if call.timeout_seconds else None
        heartbeat = call.heartbeat_seconds
        ids = activity_ids(path)

        def attempt() -> Any:
            return workflow.execute_activity_method(
                MachineTaskActivities.run_task,
                MachineTaskInput(
                    self.inp.tenant_id,
                    self.inp.job_id,
                    path,
                    call.resource,
                    call.payload,
                    self.plan.bindings,
                    call.attempt,
                    call.timeout_seconds,
                    call.token,
                ),
                activity_id=_activity_id(ids(), call.attempt),
                summary=f"{call.state} (attempt {call.attempt})" if call.attempt > 1 else call.state,
                start_to_close_timeout=timeout or MACHINE_TASK_TIMEOUT,
                schedule_to_close_timeout=timeout,
                heartbeat_timeout=timedelta(seconds=heartbeat) if heartbeat else MACHINE_TASK_HEARTBEAT,
                # A heartbeat the machine asked for is its own to miss: no attempt of ours hides it.
                retry_policy=MACHINE_TASK_RETRY if not heartbeat else replace(MACHINE_TASK_RETRY, maximum_attempts=1),
            )

        try:
            return await self.wf.budget.run(attempt, partial(self.wf._set_status, self.inp))
        except ActivityError as err:
            raise _as_asl_error(err, asked_heartbeat=call.heartbeat_seconds is not None) from err


def _activity_id(path: str, attempt: int) -> str:
    ident = f"{path}#{attempt}"
    if len(ident) <= ACTIVITY_ID_MAX:
        return ident
    digest = hashlib.sha256(ident.encode()).hexdigest()[:16]  # a deep path: its tail, and a digest of all
    return f"{digest}~{ident[-(ACTIVITY_ID_MAX - 17) :]}"


def _as_asl_error(err: ActivityError, *, asked_heartbeat: bool) -> BaseException:
    """The States Language error a failed Task attempt is, for the machine's Retry and Catch."""
    cause = err.cause
    if isinstance(cause, CancelledError):
        return asyncio.CancelledError()  # the workflow (or a failing sibling) cancelled it: no task error
    if isinstance(cause, TimeoutError):
        if cause.type == TimeoutType.HEARTBEAT and asked_heartbeat:
            return asl_errors.ASLError(asl_errors.HEARTBEAT_TIMEOUT, "the task sent no heartbeat in time")
        return asl_errors.ASLError(asl_errors.TIMEOUT, "the task did not finish in time")
    if isinstance(cause, ApplicationError):
        return asl_errors.ASLError(cause.type or asl_errors.TASK_FAILED, cause.message)
    return asl_errors.ASLError(asl_errors.TASK_FAILED, str(cause or err))


@workflow.defn(name=STATE_MACHINE)
class StateMachineWorkflow:
    def __init__(self) -> None:
        self._status: str = JobStatus.pending
        self._events: list[dict[str, Any]] = []
        self._flushed = 0
        self._last_flush: datetime | None = None
        self.callbacks = CallbackWaits()
        self._slot = SlotWait()  # the wait for one of the tenant's running slots
        self.budget = BudgetPause()

    @workflow.signal(name=BUDGET_SIGNAL)
    def budget_changed(self) -> None:
        self.budget.changed()

    @workflow.signal(name=SLOT_SIGNAL)
    def running_slot_free(self) -> None:
        self._slot.wake()

    @workflow.signal(name=TASK_TOKEN_SIGNAL)
    def task_token(self, sig: TaskTokenSignal) -> None:
        self.callbacks.receive(sig)

    @workflow.query
    def progress(self) -> dict[str, object]:
        return {"status": self._status, "path": list(self._events)}

    @workflow.run
    async def run(self, inp: SubmissionInput) -> MachineResult:
        try:
            return await self._run(inp)
        except (ActivityError, ChildWorkflowError, asyncio.CancelledError) as err:
            if cancellation.before_start(err):
                self._show_status(JobStatus.cancelled)
                return MachineResult(inp.job_id, JobStatus.cancelled)
            if cancellation.requested(err) and workflow.patched(cancellation.CANCEL_PATCH):
                await self.flush(inp, force=True)  # the path up to the cancel
                await cancellation.mark_cancelled(inp.tenant_id, inp.job_id)
                self._show_status(JobStatus.cancelled)
            raise

    async def _run(self, inp: SubmissionInput) -> MachineResult:
        job = JobRef(inp.tenant_id, inp.job_id)
        await self._set_status(inp, JobStatus.queued)
        await self._slot.take(inp.tenant_id, inp.job_id, local=False)
        plan = await workflow.execute_activity_method(
            MachineJobActivities.load_machine, job, start_to_close_timeout=DB_TIMEOUT, retry_policy=DB_RETRY
        )
        await self._set_status(inp, JobStatus.processing)
        outcome: Outcome = await machine_children.run_machine(inp, plan, _Runtime(self, inp, plan))
        await self.flush(inp, force=True)
        succeeded = outcome.status == "SUCCEEDED"
        await workflow.execute_activity_method(
            MachineJobActivities.finish_machine,
            MachineFinishInput(
                inp.tenant_id,
                inp.job_id,
                JobStatus.succeeded if succeeded else JobStatus.failed,
                outcome.output if succeeded else None,
                outcome.error,
                outcome.cause,
            ),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
        )
        self._show_status(JobStatus.succeeded if succeeded else JobStatus.failed)
        if not succeeded:
            raise ApplicationError(
                f"job {inp.job_id} failed: {outcome.error}: {outcome.cause or ''}",
                type=outcome.error or asl_errors.TASK_FAILED,
                non_retryable=True,
            )
        return MachineResult(inp.job_id, JobStatus.succeeded)

    def record(self, event: Event, max_bytes: int) -> None:
        row = {f.name: getattr(event, f.name) for f in fields(event)}  # clip copies the values
        row["input"], row["output"] = clip(row["input"], max_bytes), clip(row["output"], max_bytes)
        row["at"] = workflow.now().isoformat()
        self._events.append(row)

    async def flush(self, inp: SubmissionInput, *, force: bool = False) -> None:
        """Write the path recorded since the last write. Before a Task it waits for a second to
        pass since the last write, so a fast machine writes it in few activities; before a
        timer, and at the end, it always writes."""
        if self._flushed == len(self._events):
            return
        now = workflow.now()
        if not force and self._last_flush is not None and now - self._last_flush < FLUSH_EVERY:
            return
        first, batch = self._flushed, self._events[self._flushed :]
        self._flushed, self._last_flush = len(self._events), now
        await workflow.execute_activity_method(
            MachineJobActivities.record_machine_events,
            MachineEventsInput(inp.tenant_id, inp.job_id, first, batch),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
        )

    async def _set_status(self, inp: SubmissionInput, status: str) -> None:
        await set_job_status(inp.tenant_id, inp.job_id, status)
        self._show_status(status)

    def _show_status(self, status: str) -> None:
        self._status = status
        workflow.upsert_search_attributes([STATUS.value_set(status)])
