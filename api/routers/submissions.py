"""Submissions: a job row and its SubmissionWorkflow start, in one transaction, with
Idempotency-Key semantics."""

import hashlib
import json
import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Header
from pydantic import BaseModel, Field, model_validator
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

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
from schema.tables import IdempotencyKey, Job, Submission, Upload, WorkflowDefinition
from workflows.names import SUBMISSION
from workflows.types import SubmissionInput, job_search_attributes

router = APIRouter(prefix="/v1/submissions", tags=["submissions"], responses=AUTHENTICATED)
START_TIMEOUT = timedelta(seconds=5)


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


async def start_job(temporal: Client, settings: Settings, job: Job) -> None:
    await temporal.start_workflow(
        SUBMISSION, SubmissionInput(str(job.tenant_id), str(job.id)),
        id=str(job.id), task_queue=settings.temporal_task_queue, rpc_timeout=START_TIMEOUT,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=job_search_attributes(job.tenant_id, job.id, job.workflow_key))


async def replay_key(state: StateDep, principal: Editor, key: str, digest: str) -> SubmissionAccepted | None:
    async with tenant_session(state.engine, principal.tenant_id) as session:
        row = await session.get(IdempotencyKey, (principal.tenant_id, key))
        if row is None:
            return None
        if row.request_hash != digest:
            raise Problem(409, "idempotency_conflict",
                          "this Idempotency-Key was already used with a different request body")
        job = await session.get(Job, row.job_id)
        assert job is not None
    if job.status == "pending":
        # The first request may have died between its commit and the start: finish its work.
        try:
            await start_job(state.temporal, state.settings, job)
        except WorkflowAlreadyStartedError:
            pass
    return accepted(job, state.settings)


async def create_job(state: StateDep, principal: Editor, body: SubmissionCreate,
                     idempotency_key: str | None, digest: str) -> Job | SubmissionAccepted:
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
            session.add(IdempotencyKey(tenant_id=principal.tenant_id, key=idempotency_key,
                                       request_hash=digest, job_id=job.id))
            try:
                await session.flush()  # a concurrent twin blocks here until the first commits
            except IntegrityError:
                await session.rollback()
                done = await replay_key(state, principal, idempotency_key, digest)
                if done is None:
                    raise
                return done
    return job


async def discard_job(state: StateDep, job: Job) -> None:
    async with tenant_session(state.engine, job.tenant_id) as session:
        await session.execute(delete(IdempotencyKey).where(col(IdempotencyKey.job_id) == job.id))
        await session.execute(delete(Job).where(col(Job.id) == job.id))
        await session.execute(delete(Submission).where(col(Submission.id) == job.submission_id))


@router.post("", status_code=202, response_model=SubmissionAccepted,
             responses=responses(400, 404, 409, 422, 429, 503, descriptions={
                 404: "no such workflow or upload", 409: "Idempotency-Key reused with another body",
                 429: "the tenant's submission rate is exceeded; see Retry-After",
                 503: "Temporal or the token issuer did not answer"}))
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
    if idempotency_key and (done := await replay_key(state, principal, idempotency_key, digest)):
        SUBMISSIONS.labels(str(principal.tenant_id), body.workflow_key, "replayed").inc()
        return done
    job = await create_job(state, principal, body, idempotency_key, digest)
    if isinstance(job, SubmissionAccepted):
        SUBMISSIONS.labels(str(principal.tenant_id), body.workflow_key, "replayed").inc()
        return job
    # The row is committed before the start, so the workflow's first activity always finds it.
    try:
        await start_job(state.temporal, state.settings, job)
    except Exception as e:
        await discard_job(state, job)
        SUBMISSIONS.labels(str(principal.tenant_id), body.workflow_key, "start_failed").inc()
        raise Problem(503, "temporal_unavailable", f"could not start the workflow: {e}") from e
    SUBMISSIONS.labels(str(principal.tenant_id), body.workflow_key, "accepted").inc()
    return accepted(job, state.settings)
