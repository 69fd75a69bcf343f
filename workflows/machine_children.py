"""Child executions and redrive checkpoints in StateMachineWorkflow.

A `states:startExecution` Task (lodestone/asl/child_execution.py) makes the child's jobs row
(an activity, under the parent's tenant) and starts the child's StateMachineWorkflow as a
Temporal child workflow, id = the child's job id. Fire-and-forget answers once the child has
started and abandons it (it runs on when the parent ends); `.sync` and `.sync:2` wait for it and
answer its DescribeExecution (a failed child fails the Task with States.TaskFailed, the cause
being that description), and terminate it when the parent ends first.

Every run keeps a checkpoint of its Tasks' results (lodestone/asl/machine_resume.py) and saves
it when the machine fails; a run started by a redrive that resumes loads it, so it does its
first real work at the state that failed."""

import json
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.jobs import JobRef
    from activities.machine_children import ChildJobInput, MachineChildActivities, SaveCheckpointInput
    from activities.machine_jobs import MachinePlan
    from lodestone.asl import child_execution as child
    from lodestone.asl import errors as asl_errors
    from lodestone.asl.bindings import CHILD, resolve
    from lodestone.asl.machine import Outcome, Runtime, TaskCall
    from lodestone.asl.machine_resume import Checkpoint, resume
    from workflows.names import STATE_MACHINE
    from workflows.policies import DB_RETRY, DB_TIMEOUT
    from workflows.types import MachineResult, SubmissionInput, job_search_attributes

ABANDON = ParentClosePolicy.ABANDON  # fire-and-forget: the child runs on when the parent ends
CHECKPOINT_PATCH = "machine-checkpoint"  # runs before it saved no checkpoint when they failed


def is_child(call: TaskCall, bindings: list[dict[str, Any]]) -> bool:
    """Whether the Task starts a child execution (a startExecution Resource no binding takes)."""
    found = resolve(call.resource, call.payload, bindings)
    return found is not None and found.handler == CHILD


def _asl_error(err: ActivityError) -> asl_errors.ASLError:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return asl_errors.ASLError(cause.type or asl_errors.TASK_FAILED, cause.message)
    return asl_errors.ASLError(asl_errors.TASK_FAILED, str(cause or err))


async def run_child(inp: SubmissionInput, call: TaskCall) -> Any:
    """The Task's result: StartExecution's answer, or the finished child's DescribeExecution."""
    sync_mode = child.mode(call.resource)
    assert sync_mode is not None  # is_child said so
    key, child_input, name = child.request(call.payload)
    child_id = str(workflow.uuid4())
    try:
        made = await workflow.execute_activity_method(
            MachineChildActivities.create_child_job,
            ChildJobInput(inp.tenant_id, inp.job_id, child_id, key, child_input, name),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
            summary=f"{call.state}: job for {key}",
        )
    except ActivityError as err:
        raise _asl_error(err) from err
    handle = await workflow.start_child_workflow(
        STATE_MACHINE,
        SubmissionInput(inp.tenant_id, made.job_id),
        id=made.job_id,
        task_queue=workflow.info().task_queue,
        result_type=MachineResult,
        parent_close_policy=ABANDON if sync_mode == child.FIRE_AND_FORGET else ParentClosePolicy.TERMINATE,
        search_attributes=job_search_attributes(inp.tenant_id, made.job_id, made.workflow_key),
        static_summary=f"{call.state}: {key}",
    )
    if sync_mode == child.FIRE_AND_FORGET:
        return child.started(child.execution_arn(inp.tenant_id, made.workflow_key, made.job_id), made.start_ms)
    try:
        await handle
    except ChildWorkflowError:
        pass  # its job row says how it failed
    found = await workflow.execute_activity_method(
        MachineChildActivities.describe_child_job,
        JobRef(inp.tenant_id, made.job_id),
        start_to_close_timeout=DB_TIMEOUT,
        retry_policy=DB_RETRY,
    )
    result = child.described(found, sync_mode)
    if found["status"] != "SUCCEEDED":
        raise asl_errors.ASLError(asl_errors.TASK_FAILED, json.dumps(result, separators=(",", ":")))
    return result


async def run_machine(inp: SubmissionInput, plan: MachinePlan, runtime: Runtime) -> Outcome:
    """The machine's run, resumed from the failed run's checkpoint when a redrive asked for it,
    its own checkpoint saved when it fails."""
    done = Checkpoint()
    if inp.resume:
        data = await workflow.execute_activity_method(
            MachineChildActivities.load_machine_checkpoint,
            JobRef(inp.tenant_id, inp.job_id),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
        )
        done = Checkpoint.from_json(data)
    into = Checkpoint()
    outcome = await resume(plan.state_machine, plan.input, runtime, plan.context, done, into)
    if outcome.status != "SUCCEEDED" and workflow.patched(CHECKPOINT_PATCH):
        await workflow.execute_activity_method(
            MachineChildActivities.save_machine_checkpoint,
            SaveCheckpointInput(inp.tenant_id, inp.job_id, workflow.info().run_id, into.as_json()),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
            summary="checkpoint for a redrive",
        )
    return outcome
