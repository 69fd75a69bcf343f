"""What every activity class shares: the tenant-scoped job lookup and error helpers."""

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import errors
from lodestone.busy import Busy
from lodestone.llm import LLMTransient
from lodestone.secrets import SecretsError, SecretsProvider, SecretsUnavailable
from lodestone.tenant_secrets import resolve_tenant_secret
from lodestone.tenant_slots import SlotsBusy
from schema.tables import Job, Submission, Tenant, WorkflowDefinition


@dataclass
class LoadedJob:
    job: Job
    definition: dict[str, Any]
    input: dict[str, Any]


def fail(error_type: str, message: str) -> ApplicationError:
    return ApplicationError(message, type=error_type, non_retryable=True)


def llm_transient(e: LLMTransient) -> ApplicationError:
    """Retried, no sooner than the Retry-After the provider asked for."""
    delay = timedelta(seconds=e.retry_after) if e.retry_after else None
    return ApplicationError(str(e), type=errors.code_of(e), next_retry_delay=delay)


T = TypeVar("T")
BUSY_WAIT_MAX = 5.0  # seconds between two asks of a busy resource by a Task (heartbeating meanwhile)


def busy(e: Busy) -> ApplicationError:
    """Retryable, after the delay the busy resource asked (a template pool's turn, a tenant's
    LLM-call or render slot): the activity gives its worker slot back instead of waiting
    (workflows re-schedule it without spending an attempt; see SubmissionWorkflow)."""
    code = errors.TENANT_SLOTS_BUSY if isinstance(e, SlotsBusy) else errors.TEMPLATE_POOL_BUSY
    return ApplicationError(str(e), type=code, next_retry_delay=timedelta(seconds=e.retry_after))


async def until_free(call: Callable[[], Awaitable[T]]) -> T:
    """`call`, asked again after the delay each Busy asks for (at most BUSY_WAIT_MAX): for a
    state machine Task, which has no workflow-side rescheduling as pipeline steps have. The
    caller heartbeats meanwhile; the wait counts toward the Task's timeout."""
    while True:
        try:
            return await call()
        except Busy as e:
            await asyncio.sleep(min(e.retry_after, BUSY_WAIT_MAX))


async def secret_of(
    tenant: Tenant | None, secrets: SecretsProvider, tenant_id: str, name: str, fallback: str | None
) -> str | None:
    """The tenant's secret `name` by its reference, else fallback, for a tenant row already
    loaded (no session held while the backend answers). A backend that is down is retried; a
    reference that cannot be read fails the activity for good."""
    try:
        return await resolve_tenant_secret(secrets, tenant_id, tenant.secret_refs if tenant else {}, name, fallback)
    except SecretsUnavailable as e:
        raise ApplicationError(f"{name} unavailable: {e}", type=errors.SECRETS_UNAVAILABLE) from e
    except SecretsError as e:
        raise fail(errors.TENANT_SECRET_UNREADABLE, f"the tenant's {name} cannot be read: {e}") from e


async def job_row(session: AsyncSession, job_id: str) -> Job:
    """The job's row alone (one query), for bookkeeping that needs neither its definition nor its input."""
    job = await session.get(Job, uuid.UUID(job_id))
    if job is None:
        # RLS hides other tenants' jobs, so a wrong tenant lands here too.
        raise fail(errors.JOB_NOT_FOUND, f"job {job_id} does not exist for this tenant")
    return job


async def load_job(session: AsyncSession, job_id: str) -> LoadedJob:
    job = await job_row(session, job_id)
    definition = await session.get(WorkflowDefinition, job.workflow_definition_id)
    submission = await session.get(Submission, job.submission_id)
    assert definition is not None and submission is not None  # foreign keys guarantee both
    return LoadedJob(job, definition.definition, submission.input)


class heartbeating:
    """Heartbeat every `every` seconds while a long call runs, so a lost worker is noticed
    within the heartbeat timeout rather than the start-to-close timeout."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self._task: asyncio.Task[None] | None = None

    async def _beat(self) -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(self.every)

    async def __aenter__(self) -> "heartbeating":
        self._task = asyncio.create_task(self._beat())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
