"""Delivery as the submission workflow drives it: per target, a send activity that returns its
outcome, then a separate activity that records it, then a durable timer before the next
attempt. A receiver's 2xx (an SMTP server's acceptance) is in the workflow's history before
any database write, so a database error cannot make it send again: only a worker dying
between the answer and reporting the send's completion can (the same webhook-id and
Message-ID, for the receiver to de-duplicate).

The record runs as a local activity when the workflow asks for it (`local`): in the worker,
inside the workflow task that received the send's outcome, after that outcome is in the history.

A job cancelled while an attempt is in flight does not call the send back (a receiver may
have it already): the attempt ends and its outcome is recorded, and no attempt follows."""

import asyncio
from collections.abc import Coroutine
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import errors
    from activities.delivery import DeliveryActivities
    from activities.delivery_log import AttemptInput, DeliveryInput, DeliveryResult, SendOutcome
    from activities.jobs import JobPlan
    from workflows.cancellation import CANCEL_PATCH

SEND_PATCH = "delivery-send-outcome"
T = TypeVar("T")

WEBHOOK_TIMEOUT = timedelta(seconds=30)
WEBHOOK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=10,
    non_retryable_error_types=[
        errors.WEBHOOK_REJECTED,
        errors.WEBHOOK_REDIRECTED,
        errors.WEBHOOK_URL_REFUSED,
        errors.TENANT_SECRET_UNREADABLE,
        errors.JOB_NOT_FOUND,
    ],
)
EMAIL_TIMEOUT = timedelta(minutes=2)  # above SMTP_TIMEOUT_SECONDS (30) for connect plus the commands
EMAIL_HEARTBEAT = timedelta(seconds=20)
EMAIL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=10,
    non_retryable_error_types=[errors.EMAIL_REJECTED, errors.EMAIL_NOT_CONFIGURED, errors.JOB_NOT_FOUND],
)
# A send activity's own retries are for what fails before anything is sent (the database
# while the target's row is read, the secret backend) and for a lost worker; what a receiver
# answers is an outcome, retried by the workflow on WEBHOOK_RETRY / EMAIL_RETRY's schedule.
# Like DB_RETRY, no attempt limit: a PostgreSQL outage is waited out, not turned into a failed job.
SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=[errors.TENANT_SECRET_UNREADABLE, errors.JOB_NOT_FOUND],
)
RECORD_TIMEOUT = timedelta(seconds=30)
# The record retries until the database takes it: the outcome it stores is never sent again.
RECORD_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), non_retryable_error_types=[errors.JOB_NOT_FOUND])


def backoff(policy: RetryPolicy, attempt: int) -> timedelta:
    """The wait after failed attempt `attempt` (1-based), as Temporal would retry with `policy`."""
    wait = policy.initial_interval.total_seconds() * policy.backoff_coefficient ** (attempt - 1)
    cap = policy.maximum_interval.total_seconds() if policy.maximum_interval else wait
    return timedelta(seconds=min(wait, cap))


def error_code(err: BaseException) -> tuple[str, str]:
    if isinstance(err, ActivityError):
        err = err.cause or err
    if isinstance(err, ApplicationError):
        return err.type or "ApplicationError", err.message
    return type(err).__name__, str(err)


async def deliver_all(inp: DeliveryInput, plan: JobPlan, local: bool = False) -> list[DeliveryResult | BaseException]:
    """Every target at once; each one's result or the error it failed with, in target order.
    A target that fails does not cut another short: each ends delivered or failed."""
    return await asyncio.gather(
        *[deliver_one(replace(inp, target_index=i), plan, local) for i in range(plan.delivery_targets)],
        return_exceptions=True,
    )


async def deliver_one(target: DeliveryInput, plan: JobPlan, local: bool = False) -> DeliveryResult:
    i = target.target_index
    # Plans recorded before email targets carry no kinds: every target was a webhook.
    kind = plan.delivery_kinds[i] if i < len(plan.delivery_kinds) else "webhook"
    policy = EMAIL_RETRY if kind == "email" else WEBHOOK_RETRY
    attempts = plan.delivery_max_attempts or policy.maximum_attempts
    base: int | None = None
    for n in range(1, attempts + 1):
        done = await _whole(_attempt(target, kind, n, n == attempts, base, plan, local))
        if isinstance(done, DeliveryResult):
            return done
        base = done
        await workflow.sleep(backoff(policy, n))
    raise AssertionError("unreachable: the last attempt is final")


async def _attempt(
    target: DeliveryInput, kind: str, n: int, last: bool, base: int | None, plan: JobPlan, local: bool
) -> DeliveryResult | int:
    """Attempt `n`: send, then record the outcome. The result once delivered; the number the
    target's attempts count from, when another attempt is due; raises when none is."""
    i = target.target_index
    try:
        out = await _send(target, plan, kind)
    except ActivityError as err:  # nothing was sent, or a lost worker's send was never reported
        code, message = error_code(err)
        await _record(
            AttemptInput(target.tenant_id, target.job_id, i, kind, 0, None, f"{code}: {message}", code, final=True),
            local,
        )
        raise
    if not out.sent:  # delivered by an earlier run
        return DeliveryResult(out.delivery_id, out.webhook_id, out.prior_attempts, out.status_code or 0)
    base = out.prior_attempts if base is None else base
    final = not out.ok and (not out.retryable or last)
    await _record(
        AttemptInput(
            target.tenant_id, target.job_id, i, kind, base + n, out.status_code, out.error, out.error_type, final
        ),
        local,
    )
    if out.ok:
        return DeliveryResult(out.delivery_id, out.webhook_id, base + n, out.status_code or 0)
    if final:
        spent = "" if not out.retryable else f" after {n} attempts"
        raise ApplicationError(f"target {i}: {out.error}{spent}", type=out.error_type, non_retryable=True)
    return base


async def _whole(attempt: Coroutine[Any, Any, T]) -> T:
    """The attempt, run to its end even when the job is cancelled meanwhile; the cancellation
    then takes effect. Runs recorded before this cancelled the send itself."""
    task = asyncio.ensure_future(attempt)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError as cancelled:
        if task.done():
            raise
        if not workflow.patched(CANCEL_PATCH):
            task.cancel()
            return await task
        try:
            await task
        except Exception:  # noqa: BLE001, S110 - recorded by the attempt; the job ends cancelled all the same
            pass
        raise cancelled


async def _send(target: DeliveryInput, plan: JobPlan, kind: str) -> SendOutcome:
    if kind == "email":
        return await workflow.execute_activity_method(
            DeliveryActivities.send_email,
            target,
            start_to_close_timeout=EMAIL_TIMEOUT,
            heartbeat_timeout=EMAIL_HEARTBEAT,
            retry_policy=SEND_RETRY,
        )
    timeouts = plan.delivery_timeouts
    limit = timeouts[target.target_index] if target.target_index < len(timeouts) else 0
    # The POST's own timeout plus time to read the target's row and the tenant's secret.
    timeout = timedelta(seconds=limit + 20) if limit else WEBHOOK_TIMEOUT
    return await workflow.execute_activity_method(
        DeliveryActivities.send_webhook, target, start_to_close_timeout=timeout, retry_policy=SEND_RETRY
    )


async def _record(attempt: AttemptInput, local: bool) -> None:
    execute = workflow.execute_local_activity_method if local else workflow.execute_activity_method
    await execute(
        DeliveryActivities.record_delivery_attempt,
        attempt,
        start_to_close_timeout=RECORD_TIMEOUT,
        retry_policy=RECORD_RETRY,
    )


def start_delivery(target: DeliveryInput, plan: JobPlan) -> workflow.ActivityHandle[DeliveryResult]:
    """The target's send and record in one activity, as runs recorded before SEND_PATCH made them."""
    # Plans recorded before email targets carry no kinds: every target was a webhook.
    kinds = plan.delivery_kinds
    if target.target_index < len(kinds) and kinds[target.target_index] == "email":
        return workflow.start_activity_method(
            DeliveryActivities.deliver_email,
            target,
            start_to_close_timeout=EMAIL_TIMEOUT,
            heartbeat_timeout=EMAIL_HEARTBEAT,
            retry_policy=EMAIL_RETRY,
        )
    return workflow.start_activity_method(
        DeliveryActivities.deliver_webhook,
        target,
        start_to_close_timeout=WEBHOOK_TIMEOUT,
        retry_policy=WEBHOOK_RETRY,
    )
