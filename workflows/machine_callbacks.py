"""Callback Tasks in StateMachineWorkflow (a Resource ending in `.waitForTaskToken`): the task
token is issued by an activity (activities/machine_callbacks.py), the request goes out through
`run_machine_task` like any Task's, then the workflow waits for the `task_token` signal the API
sends (success, failure or heartbeat) on durable timers for TimeoutSeconds and HeartbeatSeconds.
A signal is kept in the history even while no worker runs, so a wait survives worker restarts."""

from dataclasses import dataclass
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.machine_callbacks import CloseTaskTokenInput, IssueTaskTokenInput, MachineCallbackActivities
    from lodestone.asl.callback import CallbackWait, wait_for_callback
    from schema.task_tokens import token_hash
    from workflows.policies import DB_RETRY, DB_TIMEOUT

TASK_TOKEN_SIGNAL = "task_token"
SUCCESS, FAILURE, HEARTBEAT = "success", "failure", "heartbeat"


@dataclass
class TaskTokenSignal:
    token_hash: str  # which wait: the SHA-256 of its token
    kind: str  # success | failure | heartbeat
    output: Any = None
    error: str | None = None
    cause: str | None = None


class CallbackWaits:
    """The run's waits by token hash. A signal for a wait not yet open is kept for it (the
    history orders a signal only against the activity results it came between)."""

    def __init__(self) -> None:
        self.waits: dict[str, CallbackWait] = {}
        self.early: dict[str, list[TaskTokenSignal]] = {}

    def receive(self, sig: TaskTokenSignal) -> None:
        wait = self.waits.get(sig.token_hash)
        if wait is None:
            self.early.setdefault(sig.token_hash, []).append(sig)
            return
        if sig.kind == SUCCESS:
            wait.succeed(sig.output)
        elif sig.kind == FAILURE:
            wait.fail(sig.error, sig.cause)
        elif sig.kind == HEARTBEAT:
            wait.beat(workflow.now())

    async def issue(self, inp: IssueTaskTokenInput) -> str:
        token = await workflow.execute_activity_method(
            MachineCallbackActivities.issue_task_token,
            inp,
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
            summary=f"task token for {inp.state}",
        )
        digest = token_hash(token)
        self.waits[digest] = CallbackWait(workflow.now())
        for sig in self.early.pop(digest, []):
            self.receive(sig)
        return token

    async def outcome(self, tenant_id: str, token: str, timeout: float | None, heartbeat: float | None) -> Any:
        """The output the outside reported, or its failure, States.Timeout or States.HeartbeatTimeout."""
        digest = token_hash(token)
        wait = self.waits[digest]
        wait.timeout_seconds, wait.heartbeat_seconds = timeout, heartbeat
        try:
            return await wait_for_callback(wait, workflow.now, _until)
        finally:
            if wait.expired:  # the API refuses the token from now on (410)
                await workflow.execute_activity_method(
                    MachineCallbackActivities.close_task_token,
                    CloseTaskTokenInput(tenant_id, digest),
                    start_to_close_timeout=DB_TIMEOUT,
                    retry_policy=DB_RETRY,
                )


async def _until(moved: Any, seconds: float | None) -> None:
    try:
        await workflow.wait_condition(moved, timeout=seconds, timeout_summary="task token deadline")
    except TimeoutError:
        pass
