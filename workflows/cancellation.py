"""A job's cancellation, as both job workflows take it. POST /v1/jobs/{id}/cancel (and
`lodestone ops cancel`) ask Temporal to cancel the run; the SDK raises it where the workflow
awaits: asyncio's CancelledError, or an activity or child workflow ended cancelled. The
workflow then stops what still runs, and its last activity, mark_cancelled, says `cancelled`
on the job and on its open steps and deliveries. Temporal delivers a run's cancellation once,
so that last activity is not cancelled in turn. Runs recorded before this (CANCEL_PATCH)
ended as they always did."""

import asyncio
from collections.abc import Iterable
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities import errors
    from activities.jobs import CancelledInput, JobActivities
    from workflows.policies import DB_RETRY, DB_TIMEOUT

CANCEL_PATCH = "job-cancel-recorded"


def requested(err: BaseException) -> bool:
    """Whether `err` is this run's cancellation reaching the code that awaited."""
    return workflow.cancellation_reason() is not None and is_cancelled_exception(err)


def before_start(err: BaseException) -> bool:
    """Whether `err` is the job's first status write refusing a job cancelled before its run began
    (an activity's failure, or a local activity's own error)."""
    cause = err.cause if isinstance(err, ActivityError) else err
    return isinstance(cause, ApplicationError) and cause.type == errors.JOB_CANCELLED


async def stop(running: Iterable["asyncio.Future[Any]"]) -> None:
    """Cancel what still runs and wait for each to end. An activity ends at once for the
    workflow; its worker hears of it with its next heartbeat's answer."""
    pending = [f for f in running if not f.done()]
    for future in pending:
        future.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


async def mark_cancelled(tenant_id: str, job_id: str) -> None:
    await workflow.execute_activity_method(
        JobActivities.mark_cancelled,
        CancelledInput(tenant_id, job_id),
        start_to_close_timeout=DB_TIMEOUT,
        retry_policy=DB_RETRY,
    )
