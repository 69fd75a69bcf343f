"""Submitting: the submission, job and Idempotency-Key rows committed in one transaction,
then the job's workflow started (SubmissionWorkflow, or StateMachineWorkflow for a state
machine's job) (or, if that fails, left to the outbox). The API's
submissions and public forms both submit through here.

Idempotency: every request with the same key and body gets the job of the one request
that committed the key; a job, once committed, is never taken back."""

import hashlib
import json
import logging
import uuid
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from lodestone.db import tenant_session
from lodestone.metrics import SUBMISSIONS
from lodestone.settings import Settings
from schema.definitions import InputInvalid, validate_input
from schema.json_schemas import UNEVALUABLE
from schema.tables import IdempotencyKey, Job, Submission, Upload, WorkflowDefinition, utcnow
from services.errors import Conflict, Invalid, NotFound
from services.outbox import record_started, start_job, workflow_type

log = logging.getLogger("lodestone.api")


def request_hash(request: dict[str, Any]) -> str:
    """The digest an Idempotency-Key is bound to: the request as JSON, keys sorted."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def replayed(engine: AsyncEngine, tenant_id: uuid.UUID, key: str, digest: str) -> Job | None:
    """The job an earlier request with this key made, if any. It is only read, never
    started from here: the request that made it starts it, or else the outbox does."""
    async with tenant_session(engine, tenant_id) as session:
        row = await session.get(IdempotencyKey, (tenant_id, key))
        if row is None:
            return None
        if row.request_hash != digest:
            raise Conflict(
                "idempotency_conflict", "this Idempotency-Key was already used with a different request body"
            )
        job = await session.get(Job, row.job_id)
        assert job is not None  # a foreign key; keys and jobs are never deleted
    return job


async def runnable_definition(session: AsyncSession, workflow_key: str, data: Any) -> WorkflowDefinition:
    """The key's current definition, once `data` meets its input_schema."""
    definition = (
        await session.exec(
            select(WorkflowDefinition).where(
                WorkflowDefinition.key == workflow_key, col(WorkflowDefinition.superseded_at).is_(None)
            )
        )
    ).first()
    if definition is None:
        raise NotFound("workflow", workflow_key)
    try:
        validate_input(definition.definition, data)
    except InputInvalid as e:
        raise Invalid("invalid_input", e.message, pointer=e.path) from e
    except UNEVALUABLE as e:
        raise Invalid(
            "unusable_schema", "the workflow's input_schema cannot be evaluated: a $ref loops or does not resolve"
        ) from e
    return definition


async def create_job(
    engine: AsyncEngine, tenant_id: uuid.UUID, request: dict[str, Any], idempotency_key: str | None, digest: str
) -> tuple[Job, str] | None:
    """The submission, job and key rows, committed together, and the workflow type the job
    runs; None if a concurrent request with the same key committed its own first."""
    upload_id = uuid.UUID(request["input_upload_id"]) if request.get("input_upload_id") else None
    async with tenant_session(engine, tenant_id) as session:
        definition = await runnable_definition(session, request["workflow_key"], request["input"])
        input_key = None
        if upload_id:
            upload = await session.get(Upload, upload_id)
            if upload is None:
                raise NotFound("upload", upload_id)
            input_key = upload.key
        submission = Submission(
            tenant_id=tenant_id,
            workflow_definition_id=definition.id,
            input=request["input"],
            input_upload_id=upload_id,
            input_url=request.get("input_url"),
        )
        job = Job(
            tenant_id=tenant_id,
            submission_id=submission.id,
            workflow_definition_id=definition.id,
            workflow_key=definition.key,
            input_key=input_key,
        )
        session.add(submission)
        await session.flush()
        session.add(job)
        await session.flush()
        if idempotency_key:
            # A concurrent twin's insert waits here for ours to commit or roll back; then
            # exactly one of them has the key, and the other inserts nothing.
            claimed = await session.execute(
                insert(IdempotencyKey)
                .values(
                    tenant_id=tenant_id, key=idempotency_key, request_hash=digest, job_id=job.id, created_at=utcnow()
                )
                .on_conflict_do_nothing(index_elements=["tenant_id", "key"])
                .returning(IdempotencyKey.job_id)
            )
            if claimed.first() is None:
                await session.rollback()  # our submission and job go with it
                return None
    return job, workflow_type(definition.definition)


async def submit(
    engine: AsyncEngine,
    temporal: Client,
    settings: Settings,
    *,
    tenant_id: uuid.UUID,
    request: dict[str, Any],
    idempotency_key: str | None,
) -> Job:
    """Idempotency, job row, workflow start. `request`: the submission as JSON (workflow_key,
    input, input_upload_id, input_url), the body an Idempotency-Key is bound to."""
    workflow_key = request["workflow_key"]
    digest = request_hash(request)
    created = None
    for _ in range(3):  # a key is only ever added: a second look finds the winner's
        if idempotency_key and (done := await replayed(engine, tenant_id, idempotency_key, digest)):
            SUBMISSIONS.labels(str(tenant_id), workflow_key, "replayed").inc()
            return done
        created = await create_job(engine, tenant_id, request, idempotency_key, digest)
        if created is not None:
            break
    if created is None:
        raise RuntimeError("an Idempotency-Key was taken but its row could not be read")
    job, workflow = created
    # The row is committed before the start, so the workflow's first activity always finds
    # it; from here on the job exists, whatever the start does. A start that fails (Temporal
    # down or slow) leaves it pending, and the worker's outbox starts it.
    try:
        await start_job(temporal, settings, job, workflow)
    except Exception as e:  # noqa: BLE001
        SUBMISSIONS.labels(str(tenant_id), workflow_key, "start_deferred").inc()
        log.warning("job %s committed, its start deferred to the outbox: %s", job.id, type(e).__name__)
        return job
    SUBMISSIONS.labels(str(tenant_id), workflow_key, "accepted").inc()
    try:
        await record_started(engine, job)
    except Exception as e:  # noqa: BLE001 - the outbox finds it started and records it
        log.warning("job %s started, not yet recorded as started: %s", job.id, type(e).__name__)
    return job
