"""Submitting: the submission, job and Idempotency-Key rows committed in one transaction,
then the job's workflow started (SubmissionWorkflow, or StateMachineWorkflow for a state
machine's job) (or, if that fails, left to the outbox). The API's
submissions and public forms both submit through here.

The transaction is the hot path's: on the driver's connection, four round trips (BEGIN
with the tenant; the definition, upload and key read together, with a token taken from the
tenant's rate bucket, lodestone.token_bucket; the rows inserted in one statement; COMMIT);
the start is recorded after the answer (services.start_recorder). A submission refused
(404, 409, 422) rolls back, and gives its token back.

Idempotency: every request with the same key and body gets the job of the one request
that committed the key; a job, once committed, is never taken back."""

import hashlib
import json
import logging
import uuid
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from lodestone.db import tenant_transaction
from lodestone.job_priority import DEFAULT as DEFAULT_PRIORITY
from lodestone.metrics import SUBMISSIONS
from lodestone.settings import Settings
from lodestone.token_bucket import Rate, take_args, take_sql, wait_for_token
from schema.definitions import InputInvalid, validate_input
from schema.json_schemas import UNEVALUABLE
from schema.tables import Job, Submission, WorkflowDefinition
from services.errors import Conflict, Invalid, NotFound, RateLimited
from services.outbox import start_job, workflow_type
from services.start_recorder import StartRecorder, record_started

log = logging.getLogger("lodestone.api")


def request_hash(request: dict[str, Any]) -> str:
    """The digest an Idempotency-Key is bound to: the request as JSON, keys sorted."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


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
    check_input(definition.definition, data)
    return definition


def check_input(definition: dict[str, Any], data: Any) -> None:
    """That `data` meets the definition's input_schema."""
    try:
        validate_input(definition, data)
    except InputInvalid as e:
        raise Invalid("invalid_input", e.message, pointer=e.path) from e
    except UNEVALUABLE as e:
        raise Invalid(
            "unusable_schema", "the workflow's input_schema cannot be evaluated: a $ref loops or does not resolve"
        ) from e


# The current definition of a key, the upload the input names ($2, maybe NULL) and the
# Idempotency-Key's row ($3, maybe NULL): one round trip. Row-level security scopes each.
READ_COLUMNS = "d.id, d.key, d.definition, u.key AS upload_key, k.request_hash, k.job_id"
READ_FROM = """
FROM (SELECT 1) AS one
LEFT JOIN workflow_definitions d ON d.key = $1 AND d.superseded_at IS NULL
LEFT JOIN uploads u ON u.id = $2
LEFT JOIN idempotency_keys k ON k.tenant_id = current_setting('app.tenant_id')::uuid AND k.key = $3
"""
READ = f"SELECT {READ_COLUMNS} {READ_FROM}"
# The same, taking a token from the tenant's bucket ($4-$8) in the same round trip: `took` is
# 0 when the bucket had none.
READ_TAKING = f"WITH took AS ({take_sql(4)}) SELECT {READ_COLUMNS}, (SELECT count(*) FROM took) AS took {READ_FROM}"
ROWS = """
WITH submission AS (
  INSERT INTO submissions (id, tenant_id, workflow_definition_id, input, input_upload_id, input_url, created_at)
  VALUES ($1, $2, $3, $4::json, $5, $6, $7)
), job AS (
  INSERT INTO jobs (id, tenant_id, submission_id, workflow_definition_id, workflow_key, status, input_key,
                    created_at, updated_at, priority)
  VALUES ($8, $2, $1, $3, $9, $10, $11, $7, $7, $12)
)
"""
# A concurrent twin's key insert waits here for ours to commit or roll back; then exactly
# one of them has the key, and the other inserts nothing (and rolls back its rows).
WITH_KEY = (
    ROWS
    + """INSERT INTO idempotency_keys (tenant_id, key, request_hash, job_id, created_at)
VALUES ($2, $13, $14, $8, $7) ON CONFLICT (tenant_id, key) DO NOTHING RETURNING job_id"""
)
WITHOUT_KEY = ROWS + "SELECT $8::uuid"


class _KeyTaken(Exception):
    """A concurrent request with the same Idempotency-Key committed first."""


JOB = f"SELECT {', '.join(c.name for c in Job.__table__.columns)} FROM jobs WHERE id = $1"  # type: ignore[attr-defined]


async def _replayed(db: asyncpg.Connection, job_id: uuid.UUID) -> Job:
    row = await db.fetchrow(JOB, job_id)
    assert row is not None  # a foreign key; keys and jobs are never deleted
    return Job(**dict(row))


async def _create(
    db: asyncpg.Connection,
    tenant_id: uuid.UUID,
    request: dict[str, Any],
    idempotency_key: str | None,
    digest: str,
    rate: Rate | None,
) -> tuple[Job, str, bool]:
    """(the job, its workflow type, whether it was made now rather than replayed)."""
    upload_id = uuid.UUID(request["input_upload_id"]) if request.get("input_upload_id") else None
    read = (request["workflow_key"], upload_id, idempotency_key)
    if rate is None:
        found = await db.fetchrow(READ, *read)
    else:
        found = await db.fetchrow(READ_TAKING, *read, *take_args(tenant_id, rate))
        if found is not None and not found["took"]:
            SUBMISSIONS.labels(str(tenant_id), request["workflow_key"], "rate_limited").inc()
            wait = await wait_for_token(db, tenant_id, rate)
            raise RateLimited("too many submissions for this tenant; slow down", wait)
    assert found is not None  # one row, always
    if found["job_id"] is not None:
        if found["request_hash"] != digest:
            raise Conflict(
                "idempotency_conflict", "this Idempotency-Key was already used with a different request body"
            )
        return await _replayed(db, found["job_id"]), "", False
    if found["id"] is None:
        raise NotFound("workflow", request["workflow_key"])
    check_input(found["definition"], request["input"])
    if upload_id and found["upload_key"] is None:
        raise NotFound("upload", upload_id)
    submission = Submission(
        tenant_id=tenant_id,
        workflow_definition_id=found["id"],
        input=request["input"],
        input_upload_id=upload_id,
        input_url=request.get("input_url"),
    )
    job = Job(
        tenant_id=tenant_id,
        submission_id=submission.id,
        workflow_definition_id=found["id"],
        workflow_key=found["key"],
        input_key=found["upload_key"],
        priority=request.get("priority") or DEFAULT_PRIORITY,
    )
    job.updated_at = job.created_at = submission.created_at
    args: list[Any] = [
        submission.id,
        tenant_id,
        found["id"],
        json.dumps(request["input"]),
        upload_id,
        submission.input_url,
        submission.created_at,
        job.id,
        job.workflow_key,
        job.status,
        job.input_key,
        job.priority,
    ]
    if idempotency_key:
        if await db.fetchval(WITH_KEY, *args, idempotency_key, digest) is None:
            raise _KeyTaken
    else:
        await db.execute(WITHOUT_KEY, *args)
    return job, workflow_type(found["definition"]), True


async def submit(
    engine: AsyncEngine,
    temporal: Client,
    settings: Settings,
    *,
    tenant_id: uuid.UUID,
    request: dict[str, Any],
    idempotency_key: str | None,
    recorder: StartRecorder | None = None,
    rate: Rate | None = None,
) -> Job:
    """Rate, idempotency, job row, workflow start. `request`: the submission as JSON (workflow_key,
    input, input_upload_id, input_url), the body an Idempotency-Key is bound to. `rate`: the
    tenant's bucket this submission takes a token from (RateLimited when it has none)."""
    workflow_key = request["workflow_key"]
    digest = request_hash(request)
    for _ in range(3):  # a key is only ever added: a second look finds the winner's
        try:
            async with tenant_transaction(engine, tenant_id) as db:
                job, workflow, made = await _create(db, tenant_id, request, idempotency_key, digest, rate)
            break
        except _KeyTaken:
            continue
    else:
        raise RuntimeError("an Idempotency-Key was taken but its row could not be read")
    if not made:
        SUBMISSIONS.labels(str(tenant_id), workflow_key, "replayed").inc()
        return job
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
    if recorder is not None:
        recorder.add(job)
        return job
    try:
        await record_started(engine, tenant_id, [job.id])
    except Exception as e:  # noqa: BLE001 - the outbox finds it started and records it
        log.warning("job %s started, not yet recorded as started: %s", job.id, type(e).__name__)
    return job
