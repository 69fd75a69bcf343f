"""Task tokens of callback Tasks: the outside reports a Task's success (its output), failure
(error, cause) or heartbeat, as Step Functions' SendTaskSuccess, SendTaskFailure and
SendTaskHeartbeat. Tenant-scoped: another tenant's token, or a forged one, is not found."""

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from api.deps import Editor, StateDep
from api.problems import AUTHENTICATED, Problem, responses
from services import task_tokens
from workflows.machine_callbacks import FAILURE, HEARTBEAT, SUCCESS

router = APIRouter(prefix="/v1/task-tokens", tags=["task tokens"], responses=AUTHENTICATED)
Token = Annotated[str, Path(min_length=1, max_length=1024)]
_CLOSED = responses(
    404, 409, 410, 422, descriptions={409: "the token was already used", 410: "the Task stopped waiting"}
)


class TaskSuccess(BaseModel):
    output: Any = None  # the Task's result, as SendTaskSuccess's output


class TaskFailure(BaseModel):
    error: str | None = Field(default=None, max_length=256)  # States.TaskFailed when absent
    cause: str | None = Field(default=None, max_length=32768)


class TaskTokenState(BaseModel):
    job_id: str
    state: str
    path: str
    attempt: int
    status: str  # waiting | succeeded | failed


def closed(e: task_tokens.TokenClosed) -> Problem:
    if e.used:
        return Problem(409, "task_token_used", str(e))
    return Problem(410, "task_token_expired", str(e))


async def _report(state: StateDep, principal: Editor, token: str, kind: str, **fields: Any) -> TaskTokenState:
    try:
        row = await task_tokens.report(state.engine, state.temporal, principal.tenant_id, token, kind, **fields)
    except task_tokens.TokenClosed as e:
        raise closed(e) from None
    return TaskTokenState(
        job_id=str(row.job_id), state=row.state, path=row.path, attempt=row.attempt, status=row.status
    )


@router.post("/{token}/success", responses=_CLOSED)
async def send_success(token: Token, body: TaskSuccess, state: StateDep, principal: Editor) -> TaskTokenState:
    return await _report(state, principal, token, SUCCESS, output=body.output)


@router.post("/{token}/failure", responses=_CLOSED)
async def send_failure(token: Token, body: TaskFailure, state: StateDep, principal: Editor) -> TaskTokenState:
    return await _report(state, principal, token, FAILURE, error=body.error, cause=body.cause)


@router.post("/{token}/heartbeat", responses=_CLOSED)
async def send_heartbeat(token: Token, state: StateDep, principal: Editor) -> TaskTokenState:
    return await _report(state, principal, token, HEARTBEAT)
