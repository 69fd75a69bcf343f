"""The job workflows' activity timeouts and retry policies, what a busy resource (the
template pool, a tenant's LLM-call or render slots) asks of them, and the status write both make."""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from activities import errors
from activities.jobs import JobActivities, JobStatusInput

BUSY = errors.TEMPLATE_POOL_BUSY  # the busy code of runs recorded before SLOTS_BUSY_PATCH
BUSY_TYPES = errors.BUSY_TYPES

DB_TIMEOUT = timedelta(seconds=30)
DB_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), non_retryable_error_types=[errors.JOB_NOT_FOUND])
STEP_TIMEOUT = timedelta(minutes=5)
STEP_HEARTBEAT = timedelta(seconds=30)
# About 5 minutes of transient failure (2 s doubling to 1 min, 10 attempts): with 6 (about 1 min)
# a 30 s LLM outage spent every attempt of a step that started with it, in the fault suite.
STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=10,
    non_retryable_error_types=[
        errors.LLM_EMPTY_ANSWER,
        errors.LLM_REFUSED,
        errors.LLM_REQUEST_REJECTED,
        errors.STEP_INPUT_MISSING,
        errors.TENANT_SECRET_UNREADABLE,
        errors.TEMPLATE_RENDER_ERROR,
        errors.TEMPLATE_SECURITY_VIOLATION,
        errors.JOB_NOT_FOUND,
        errors.TEMPLATE_LIMIT_EXCEEDED,
    ],
)
INGEST_TIMEOUT = timedelta(hours=3)  # 10 GB at a slow 1 MB/s still fits
INGEST_HEARTBEAT = timedelta(seconds=30)
INGEST_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=10,
    non_retryable_error_types=[
        errors.INPUT_URL_REFUSED,
        errors.INPUT_FETCH_FAILED,
        errors.INPUT_TOO_LARGE,
        errors.JOB_NOT_FOUND,
    ],
)
RENDER_TIMEOUT = timedelta(minutes=3)
RENDER_HEARTBEAT = timedelta(seconds=20)
# Rendering's own failures are non-retryable; the attempts are for the database, the store or
# the worker going away (3 attempts were spent by a 5 s PostgreSQL restart after a worker kill
# in the fault suite), so they last about a minute.
RENDER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=6,
    non_retryable_error_types=[
        errors.TEMPLATE_RENDER_ERROR,
        errors.TEMPLATE_SECURITY_VIOLATION,
        errors.PDF_RENDER_FAILED,
        errors.JOB_NOT_FOUND,
        errors.TEMPLATE_LIMIT_EXCEEDED,
    ],
)


def busy_delay(err: BaseException, types: tuple[str, ...] = BUSY_TYPES) -> timedelta | None:
    """The wait a busy failure (one of `types`) asks for, or None for any other failure."""
    cause = err.cause if isinstance(err, ActivityError) else None
    if isinstance(cause, ApplicationError) and cause.type in types:
        return cause.next_retry_delay or timedelta(seconds=5)
    return None


# StateMachineWorkflow's Task attempts. The machine's own Retry decides about task errors
# (the activity fails them non-retryable); these attempts only cover a worker lost mid-task,
# found by the heartbeat the activity sends while it waits (unless the machine set its own
# HeartbeatSeconds). A Task without TimeoutSeconds gets at most this long per attempt.
MACHINE_TASK_TIMEOUT = timedelta(hours=1)
MACHINE_TASK_HEARTBEAT = timedelta(seconds=30)
MACHINE_TASK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=3
)


async def set_job_status(tenant_id: str, job_id: str, status: str, *, local: bool = False) -> None:
    """The job row's status, written by the set_status activity (both job workflows); `local`
    runs it as a local activity, inside the workflow task that asked for it."""
    execute = workflow.execute_local_activity_method if local else workflow.execute_activity_method
    await execute(
        JobActivities.set_status,
        JobStatusInput(tenant_id, job_id, status),
        start_to_close_timeout=DB_TIMEOUT,
        retry_policy=DB_RETRY,
    )
