"""What the outside reports with a callback Task's task token (SendTaskSuccess, SendTaskFailure,
SendTaskHeartbeat): the token's row is locked, checked still waiting, the workflow run that
waits on it is signalled, and then the row is closed (or its heartbeat noted), in one
transaction. The lock serializes API processes, so a token is used once; a signal that fails
leaves the row waiting, to be reported again."""

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from lodestone.db import tenant_session
from schema.tables import utcnow
from schema.task_tokens import FAILED, SUCCEEDED, TIMED_OUT, WAITING, TaskToken, token_hash
from services.errors import NotFound
from workflows.machine_callbacks import FAILURE, HEARTBEAT, SUCCESS, TASK_TOKEN_SIGNAL, TaskTokenSignal

KINDS = (SUCCESS, FAILURE, HEARTBEAT)
ENDED = "ended"  # the run that waited on it ended (cancelled, terminated, timed out as a whole)


class TokenClosed(Exception):
    """The token was issued but can no longer be used: `used` (its outcome was reported) or
    `expired` (its Task timed out, or its run ended)."""

    def __init__(self, status: str) -> None:
        self.used = status in (SUCCEEDED, FAILED)
        super().__init__(
            f"this task token was already used ({status})"
            if self.used
            else "this task token is no longer waited on (its Task timed out or its job ended)"
        )


async def report(
    engine: AsyncEngine,
    client: Client,
    tenant_id: uuid.UUID,
    token: str,
    kind: str,
    *,
    output: Any = None,
    error: str | None = None,
    cause: str | None = None,
    approval_link: bool = False,
) -> TaskToken:
    """Report `kind` for the token; `approval_link`: only a token issued with an approval link."""
    digest = token_hash(token)
    ended: RPCError | None = None
    async with tenant_session(engine, tenant_id) as session:
        found = await session.exec(select(TaskToken).where(TaskToken.token_hash == digest).with_for_update())
        row = found.first()
        if row is None or (approval_link and not row.approval_link):
            raise NotFound("task token")
        if row.status != WAITING:
            raise TokenClosed(row.status)
        handle = client.get_workflow_handle(str(row.job_id), run_id=row.run_id)
        try:
            await handle.signal(TASK_TOKEN_SIGNAL, TaskTokenSignal(digest, kind, output, error, cause))
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
            ended = e
        if ended is not None:
            row.status, row.closed_at = ENDED, utcnow()  # the run completed: no one waits any more
        elif kind == HEARTBEAT:
            row.heartbeat_at = utcnow()
        else:
            row.status, row.closed_at = (SUCCEEDED if kind == SUCCESS else FAILED), utcnow()
        session.add(row)
    if ended is not None:
        raise TokenClosed(ENDED) from ended
    return row


async def find(engine: AsyncEngine, tenant_id: uuid.UUID, token: str, *, approval_link: bool = False) -> TaskToken:
    async with tenant_session(engine, tenant_id) as session:
        row = await session.get(TaskToken, token_hash(token))
    if row is None or (approval_link and not row.approval_link):
        raise NotFound("task token")
    return row


__all__ = ["KINDS", "TIMED_OUT", "TokenClosed", "find", "report"]
