"""Submissions: the submission, job and Idempotency-Key rows committed in one transaction,
then the job's SubmissionWorkflow started (or, if that fails, left to the outbox).

Idempotency: every request with the same key and body gets the job of the one request
that committed the key; a job, once committed, is never taken back."""

import hashlib
import json
import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Header
from pydantic import BaseModel, Field, model_validator
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select

from api.auth import Principal
from api.deps import Editor, StateDep
from api.limits import TenantRateLimiter
from api.problems import AUTHENTICATED, Problem, not_found, responses
from api.routers.workflows import UNEVALUABLE, JsonObject
from lodestone.db import tenant_session
from lodestone.metrics import SUBMISSIONS
from lodestone.netguard import OutboundRefused, check_url
from lodestone.settings import Settings
from schema.definitions import InputInvalid, validate_input
from schema.tables import IdempotencyKey, Job, Submission, Upload, WorkflowDefinition, utcnow
from services.outbox import record_started, start_job

log = logging.getLogger("lodestone.api")
router = APIRouter(prefix="/v1/submissions", tags=["submissions"], responses=AUTHENTICATED)


class SubmissionCreate(BaseModel):
    workflow_key: str = Field(min_length=1, max_length=63)
    input: JsonObject = Field(default_factory=dict)
    input_upload_id: uuid.UUID | None = None
    input_url: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _one_input_object(self) -> "SubmissionCreate":
        if self.input_upload_id and self.input_url:
            raise ValueError("give input_upload_id or input_url, not both")
        if self.input_url:
            try:
                check_url(self.input_url)
            except OutboundRefused as e:
                raise ValueError(str(e)) from e
        return self


class SubmissionAccepted(BaseModel):
    job_id: str
    status: str
    links: dict[str, str]


def accepted(job: Job, settings: Settings) -> SubmissionAccepted:
    return SubmissionAccepted(job_id=str(job.id), status=job.status, links={
        "self": f"{settings.api_url}/v1/jobs/{job.id}",
        "temporal": settings.workflow_link(str(job.id))})


def request_hash(body: SubmissionCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def replay_key(state: StateDep, principal: Principal, key: str, digest: str) -> SubmissionAccepted | None:
    """The job an earlier request with this key made, if any. It is only read, never
    started from here: the request that made it starts it, or else the outbox does."""
    async with tenant_session(state.engine, principal.tenant_id) as session:
        row = await session.get(IdempotencyKey, (principal.tenant_id, key))
        if row is None:
            return None
        if row.request_hash != digest:
            raise Problem(409, "idempotency_conflict",
                          "this Idempotency-Key was already used with a different request body")
        job = await session.get(Job, row.job_id)
        assert job is not None  # a foreign key; keys and jobs are never deleted
    return accepted(job, state.settings)


async def create_job(state: StateDep, principal: Principal, body: SubmissionCreate,
                     idempotency_key: str | None, digest: str) -> Job | None:
    """The submission, job and key rows, committed together; None if a concurrent request
    with the same key committed its own first."""
    async with tenant_session(state.engine, principal.tenant_id) as session:
        definition = (await session.exec(select(WorkflowDefinition).where(
            WorkflowDefinition.key == body.workflow_key,
            col(WorkflowDefinition.superseded_at).is_(None)))).first()
        if definition is None:
            raise not_found("workflow", body.workflow_key)
        try:
            validate_input(definition.definition, body.input)
        except InputInvalid as e:
            raise Problem(422, "invalid_input", e.message, pointer=e.path) from e
        except UNEVALUABLE as e:
            raise Problem(422, "unusable_schema", "the workflow's input_schema cannot be evaluated: a $ref loops "
                          "or does not resolve") from e
        input_key = None
        if body.input_upload_id:
            upload = await session.get(Upload, body.input_upload_id)
            if upload is None:
                raise not_found("upload", body.input_upload_id)
            input_key = upload.key
        submission = Submission(tenant_id=principal.tenant_id, workflow_definition_id=definition.id,
                                input=body.input, input_upload_id=body.input_upload_id, input_url=body.input_url)
        job = Job(tenant_id=principal.tenant_id, submission_id=submission.id,
                  workflow_definition_id=definition.id, workflow_key=definition.key, input_key=input_key)
        session.add(submission)
        await session.flush()
        session.add(job)
        await session.flush()
        if idempotency_key:
            # A concurrent twin's insert waits here for ours to commit or roll back; then
            # exactly one of them has the key, and the other inserts nothing.
            claimed = await session.execute(
                insert(IdempotencyKey).values(tenant_id=principal.tenant_id, key=idempotency_key,
                                              request_hash=digest, job_id=job.id, created_at=utcnow())
                .on_conflict_do_nothing(index_elements=["tenant_id", "key"])
                .returning(IdempotencyKey.job_id))
            if claimed.first() is None:
                await session.rollback()  # our submission and job go with it
                return None
    return job


@router.post("", status_code=202, response_model=SubmissionAccepted,
             responses=responses(400, 404, 409, 422, 429, 503, descriptions={
                 404: "no such workflow or upload", 409: "Idempotency-Key reused with another body",
                 429: "the tenant's submission rate is exceeded; see Retry-After",
                 503: "PostgreSQL or the token issuer did not answer; see Retry-After"}))
async def submit(body: SubmissionCreate, state: StateDep, principal: Editor,
                 idempotency_key: Annotated[str | None, Header(max_length=255)] = None) -> SubmissionAccepted:
    return await accept_submission(state, principal, body, idempotency_key)


async def accept_submission(state: StateDep, principal: Principal, body: SubmissionCreate, idempotency_key: str | None,
                            limiter: TenantRateLimiter | None = None) -> SubmissionAccepted:
    """Rate limit, idempotency, job row, workflow start: shared by the API and public forms."""
    wait = (limiter or state.submissions_limiter).take(str(principal.tenant_id))
    if wait:
        SUBMISSIONS.labels(str(principal.tenant_id), body.workflow_key, "rate_limited").inc()
        raise Problem(429, "rate_limited", "too many submissions for this tenant; slow down",
                      headers={"Retry-After": str(max(1, round(wait + 0.5)))})
    digest = request_hash(body)
    job = None
    for _ in range(3):  # a key is only ever added: a second look finds the winner's
        if idempotency_key and (done := await replay_key(state, principal, idempotency_key, digest)):
            SUBMISSIONS.labels(str(principal.tenant_id), body.workflow_key, "replayed").inc()
            return done
        job = await create_job(state, principal, body, idempotency_key, digest)
        if job is not None:
            break
    if job is None:
        raise RuntimeError("an Idempotency-Key was taken but its row could not be read")
    # The row is committed before the start, so the workflow's first activity always finds
    # it; from here on the job exists, whatever the start does. A start that fails (Temporal
    # down or slow) leaves it pending, and the worker's outbox starts it.
    try:
        await start_job(state.temporal, state.settings, job)
    except Exception as e:  # noqa: BLE001
        SUBMISSIONS.labels(str(principal.tenant_id), body.workflow_key, "start_deferred").inc()
        log.warning("job %s committed, its start deferred to the outbox: %s", job.id, type(e).__name__)
        return accepted(job, state.settings)
    SUBMISSIONS.labels(str(principal.tenant_id), body.workflow_key, "accepted").inc()
    try:
        await record_started(state.engine, job)
    except Exception as e:  # noqa: BLE001 - the outbox finds it started and records it
        log.warning("job %s started, not yet recorded as started: %s", job.id, type(e).__name__)
    return accepted(job, state.settings)
