"""ScheduledJobWorkflow: one run of a job schedule (services/job_schedules.py). It makes the
run's job row (create_scheduled_job), then runs the job's own workflow (SubmissionWorkflow or
StateMachineWorkflow) as its child under the job's id, and waits for it, so the schedule's
overlap policy applies to the job itself: `cancel_other` cancels the running job,
`terminate_other` terminates it. The job id is derived from this run's workflow id, which
Temporal makes from the schedule id and the scheduled time: one job per scheduled time."""

import uuid
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ChildWorkflowError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities import errors
    from activities.scheduled_jobs import ScheduledJobActivities, ScheduledJobRequest
    from schema.definition_kinds import STATE_MACHINE as MACHINE_KIND
    from workflows.names import SCHEDULED_JOB, STATE_MACHINE, SUBMISSION
    from workflows.policies import DB_TIMEOUT
    from workflows.types import ScheduledJobInput, ScheduledJobResult, SubmissionInput, job_search_attributes

# A definition or input gone bad fails this run at once; PostgreSQL being away is waited out.
CREATE_RETRY = RetryPolicy(
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=[errors.SCHEDULED_WORKFLOW_NOT_FOUND, errors.SCHEDULED_INPUT_INVALID],
)
JOB_NAMESPACE = uuid.UUID("0f5f1a8e-6d0e-4f2b-9a39-5b1c2f7d9e41")


def scheduled_job_id(run_workflow_id: str) -> str:
    """The job id of a schedule's run, from the run's workflow id."""
    return str(uuid.uuid5(JOB_NAMESPACE, run_workflow_id))


@workflow.defn(name=SCHEDULED_JOB)
class ScheduledJobWorkflow:
    @workflow.run
    async def run(self, inp: ScheduledJobInput) -> ScheduledJobResult:
        job_id = scheduled_job_id(workflow.info().workflow_id)
        made = await workflow.execute_activity_method(
            ScheduledJobActivities.create_scheduled_job,
            ScheduledJobRequest(inp.tenant_id, job_id, inp.workflow_key, inp.input),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=CREATE_RETRY,
            summary=f"job for {inp.workflow_key}",
        )
        try:
            outcome = await workflow.execute_child_workflow(
                STATE_MACHINE if made.kind == MACHINE_KIND else SUBMISSION,
                SubmissionInput(inp.tenant_id, made.job_id),
                id=made.job_id,
                task_queue=workflow.info().task_queue,
                search_attributes=job_search_attributes(inp.tenant_id, made.job_id, made.workflow_key),
                static_summary=f"{inp.schedule_id}: {made.workflow_key}",
            )
        except ChildWorkflowError:
            return ScheduledJobResult(made.job_id, "failed")  # the job row says how
        except WorkflowAlreadyStartedError:  # the outbox found the job pending and started it first
            return ScheduledJobResult(made.job_id, "started by the outbox")
        status = outcome.get("status") if isinstance(outcome, dict) else None
        return ScheduledJobResult(made.job_id, str(status or "finished"))
