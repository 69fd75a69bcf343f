"""Worker interceptor: every activity's log lines carry its tenant, job and workflow, and
steps and deliveries feed the Prometheus metrics."""

import logging
import time
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from lodestone import metrics
from lodestone.logs import bind, unbind

log = logging.getLogger("lodestone.activity")
DELIVERY_KINDS = {"deliver_webhook": "webhook", "deliver_email": "email"}


class ObservingInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ObservingActivity(next)


class _ObservingActivity(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        arg = input.args[0] if input.args else None
        token = bind(
            tenant_id=getattr(arg, "tenant_id", None), job_id=getattr(arg, "job_id", None), workflow_id=info.workflow_id
        )
        metrics.ACTIVITIES_IN_FLIGHT.inc()
        started = time.monotonic()
        try:
            result = await super().execute_activity(input)
        except BaseException as err:
            elapsed = time.monotonic() - started
            reason = _failed(info, err, elapsed)
            # The error's type only: messages can quote upstream answers.
            log.warning(
                "activity %s attempt %d failed after %.3fs: %s", info.activity_type, info.attempt, elapsed, reason
            )
            raise
        else:
            elapsed = time.monotonic() - started
            _succeeded(info, arg, result, elapsed)
            log.info("activity %s attempt %d completed in %.3fs", info.activity_type, info.attempt, elapsed)
            return result
        finally:
            metrics.ACTIVITIES_IN_FLIGHT.dec()
            unbind(token)


def _succeeded(info: activity.Info, arg: Any, result: Any, elapsed: float) -> None:
    if info.activity_type == "run_step":
        metrics.STEP_DURATION.labels(result.model, "completed").observe(elapsed)
    elif info.activity_type in DELIVERY_KINDS:
        metrics.DELIVERY_ATTEMPTS.labels(DELIVERY_KINDS[info.activity_type], "delivered").inc()


def _failed(info: activity.Info, err: BaseException, elapsed: float) -> str:
    """Record the failure; returns its reason, the error's type."""
    final = isinstance(err, ApplicationError) and err.non_retryable
    policy = info.retry_policy
    if policy and policy.maximum_attempts and info.attempt >= policy.maximum_attempts:
        final = True
    reason = (err.type if isinstance(err, ApplicationError) else None) or type(err).__name__
    if info.activity_type == "run_step":
        metrics.STEP_DURATION.labels("unknown", "failed" if final else "retrying").observe(elapsed)
    elif info.activity_type in DELIVERY_KINDS:
        kind = DELIVERY_KINDS[info.activity_type]
        metrics.DELIVERY_ATTEMPTS.labels(kind, "failed" if final else "retrying").inc()
        if final:
            metrics.DELIVERY_FAILURES.labels(kind, reason).inc()
    return reason
