"""Jobs: a filtered, cursor-paged list, and one job with its steps, usage, artifacts,
deliveries, error and Temporal Web UI link; a state-machine job with its output and path;
the redrive of a failed job; the cancel of a running one."""

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from api.deps import Editor, SessionDep, StateDep, Viewer
from api.problems import AUTHENTICATED, Problem, responses
from schema.tables import Job, JobStateEvent, JobStatus
from services import jobs
from services.cancel import cancel_job
from services.redrive import Redrive, redrive
from services.redrive_version import Version
from services.usage import job_summary

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=AUTHENTICATED)


class JobSummary(BaseModel):
    id: str
    workflow_key: str
    status: str
    created_at: str
    updated_at: str


class JobPage(BaseModel):
    items: list[JobSummary]
    next_cursor: str | None


class PathEvent(BaseModel):
    """One event of a state machine's run: a state entered or exited, a retry, a catch, a failure."""

    seq: int
    at: str
    kind: str  # entered | exited | retry | caught | failed
    state: str
    path: str  # the state's place in the run: "Check", "Fan/1/Check", "Each/3/Check"
    type: str
    input: Any = None  # entered: the state's input; values past MACHINE_PATH_VALUE_MAX_BYTES are truncated
    output: Any = None  # exited: the state's output
    error: str | None = None
    cause: str | None = None
    attempt: int | None = None  # retry: the attempt that failed
    delay_seconds: float | None = None  # retry: the wait before the next attempt
    next: str | None = None  # exited: the Next taken; caught: the catcher's Next


class JobDetail(JobSummary):
    kind: str  # pipeline | state_machine
    error: dict[str, Any] | None
    steps: list[dict[str, Any]]
    artifacts: list[dict[str, Any]]
    deliveries: list[dict[str, Any]]
    output: Any = None  # a state machine's output, once it succeeded
    path: list[PathEvent] | None = None  # a state machine's events so far, in order
    redrive_count: int = 0  # how many times the job was redriven
    priority: int = 3  # 1 (first) to 5: its order among its tenant's jobs waiting for a running slot
    parent_job_id: str | None = None  # a child execution: the job whose Task started it
    # LLM tokens and cost in all, and by provider and model: {calls, tokens_in, tokens_out, cost_usd, by_model}
    usage: dict[str, Any] | None = None
    links: dict[str, str]


class RedriveAction(BaseModel):
    verb: str  # skip | run
    kind: str  # task | state_machine | step | render | deliver
    name: str
    state: str


class RedriveResult(BaseModel):
    job_id: str
    run_id: str | None  # the new run's; null for a dry run
    dry_run: bool
    redrive_count: int
    version: int  # the definition version the new run runs
    previous_version: int  # the version the job's last run ran
    start: str  # where the new run starts: "step angles", "from Three", "from StartAt One"
    last_run: str
    failure: str | None
    actions: list[RedriveAction]


def redrive_result(plan: Redrive) -> RedriveResult:
    return RedriveResult(
        job_id=plan.job_id,
        run_id=plan.new_run_id,
        dry_run=plan.new_run_id is None,
        redrive_count=plan.redrive_count,
        version=plan.version,
        previous_version=plan.previous_version,
        start=plan.start,
        last_run=plan.last_run,
        failure=plan.failure,
        actions=[RedriveAction(verb=a.verb, kind=a.kind, name=a.name, state=a.state) for a in plan.actions],
    )


class CancelResult(BaseModel):
    job_id: str
    # cancelled: done (a job not started yet, or one already cancelled); cancelling: its run
    # was asked to stop, and the job says cancelled once it has (GET /v1/jobs/{id}).
    status: str


def path_event(e: JobStateEvent) -> PathEvent:
    return PathEvent(
        seq=e.seq,
        at=e.at.isoformat(),
        kind=e.kind,
        state=e.state,
        path=e.path,
        type=e.type,
        input=e.input,
        output=e.output,
        error=e.error,
        cause=e.cause,
        attempt=e.attempt,
        delay_seconds=e.delay_seconds,
        next=e.next,
    )


def summary(job: Job) -> JobSummary:
    return JobSummary(
        id=str(job.id),
        workflow_key=job.workflow_key,
        status=job.status,
        created_at=job.created_at.isoformat(),
        updated_at=job.updated_at.isoformat(),
    )


def _cursor(job: Job) -> str:
    return base64.urlsafe_b64encode(f"{job.created_at.isoformat()}|{job.id}".encode()).decode()


def _parse_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        ts, _, ident = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        at = datetime.fromisoformat(ts)
        # Ours carry UTC times; one with no UTC equivalent (year 1 at +01:00) would crash the query.
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC), uuid.UUID(ident)
    except (ValueError, OverflowError) as e:
        raise Problem(400, "invalid_cursor", "the cursor is not one this API issued") from e


@router.get("", response_model=JobPage, responses=responses(400, 422))
async def list_jobs(
    _: Viewer,
    session: SessionDep,
    status: JobStatus | None = None,
    workflow_key: str | None = None,
    cursor: str | None = None,
    limit: int = Query(default=50, ge=1, le=200),
) -> JobPage:
    before = _parse_cursor(cursor) if cursor else None
    rows, more = await jobs.page(session, status=status, workflow_key=workflow_key, before=before, limit=limit)
    return JobPage(items=[summary(j) for j in rows], next_cursor=_cursor(rows[-1]) if more else None)


@router.get("/{job_id}", response_model=JobDetail, responses=responses(404, 422))
async def get_job(job_id: uuid.UUID, _: Viewer, session: SessionDep, state: StateDep) -> JobDetail:
    record = await jobs.detail(session, job_id)
    job, usage, failure = record.job, record.usage, record.failure
    api = state.settings.api_url
    return JobDetail(
        **summary(job).model_dump(),
        kind="state_machine" if record.state_machine else "pipeline",
        output=job.output if record.state_machine else None,
        path=[path_event(e) for e in record.path] if record.state_machine else None,
        redrive_count=job.redrive_count,
        priority=job.priority,
        usage=job_summary(usage.values()),
        parent_job_id=str(job.parent_job_id) if job.parent_job_id else None,
        error=None
        if failure is None
        else {
            "code": failure.error_code,
            "message": failure.message,
            "failed_step": failure.failed_step,
            "temporal_link": failure.temporal_link,
        },
        steps=[
            {
                "id": s.step_id,
                "status": s.status,
                "attempts": s.attempts,
                "error": s.error,
                "usage": None
                if s.step_id not in usage
                else {
                    "model": usage[s.step_id].model,
                    "provider": usage[s.step_id].provider,
                    "fallbacks": usage[s.step_id].fallbacks,
                    "tokens_in": usage[s.step_id].tokens_in,
                    "tokens_out": usage[s.step_id].tokens_out,
                    "cost_usd": usage[s.step_id].cost_usd,
                },
            }
            for s in record.steps
        ],
        artifacts=[
            {
                "id": str(a.id),
                "kind": a.kind,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
                "url": f"{api}/v1/artifacts/{a.id}",
            }
            for a in record.artifacts
        ],
        deliveries=[
            {
                "id": str(d.id),
                "kind": d.kind,
                "target": d.target,
                "webhook_id": d.webhook_id,
                "status": d.status,
                "attempts": d.attempts,
                "error": d.error,
                "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
            }
            for d in record.deliveries
        ],
        links={"self": f"{api}/v1/jobs/{job_id}", "temporal": state.settings.workflow_link(str(job_id))},
    )


@router.post(
    "/{job_id}/redrive",
    status_code=202,
    response_model=RedriveResult,
    responses={200: {"model": RedriveResult, "description": "dry_run=true: the plan; nothing started"}}
    | responses(404, 409, 422),
)
async def redrive_job(
    job_id: uuid.UUID,
    principal: Editor,
    state: StateDep,
    response: Response,
    from_start: bool = False,
    version: Version = Version.original,
    dry_run: bool = False,
) -> RedriveResult:
    """Start a failed job again: a state machine resumes at the state that failed (the states
    and Map items that succeeded are not run again; ``from_start=true``: from StartAt), a
    pipeline at the step that failed. ``version``: the definition version the job was
    submitted with (``original``) or its workflow's current one (``latest``). ``dry_run=true``
    answers 200 with the plan and starts nothing."""
    plan = await redrive(
        state.settings,
        state.temporal,
        None,
        state.engine,
        job_id,
        tenant=principal.tenant_id,
        from_start=from_start,
        version=version,
        dry_run=dry_run,
    )
    if dry_run:
        response.status_code = 200
    return redrive_result(plan)


@router.post("/{job_id}/cancel", status_code=202, response_model=CancelResult, responses=responses(404, 409, 422))
async def cancel(job_id: uuid.UUID, principal: Editor, state: StateDep) -> CancelResult:
    """Cancel a job that has not finished: its running activities and child workflows are
    stopped, no further delivery is attempted, and the job and its open steps end ``cancelled``.
    A finished job is 409 ``job_finished``; a cancelled one answers as before."""
    done = await cancel_job(state.temporal, state.engine, job_id, tenant=principal.tenant_id)
    return CancelResult(job_id=done.job_id, status=done.status)
