"""Task tokens of callback Tasks: issued before the Task's request is sent, closed when the
wait ends without the outside (a timeout). A token is an HMAC-SHA256, under a key derived from
the link-signing key, of (tenant, job, workflow run, path, attempt): unguessable without the
key, bound to that one state entry, and the same if the activity runs twice, so a retry
inserts nothing twice. Only its SHA-256 is stored."""

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col
from temporalio import activity

from lodestone import links
from lodestone.db import tenant_session
from lodestone.settings import Settings
from schema.tables import utcnow
from schema.task_tokens import TIMED_OUT, WAITING, TaskToken, token_hash

TOKEN_PREFIX = "tt1."
_CONTEXT = b"lodestone/task-token/v1"


@dataclass
class IssueTaskTokenInput:
    tenant_id: str
    job_id: str
    run_id: str
    path: str
    attempt: int
    state: str


@dataclass
class CloseTaskTokenInput:
    tenant_id: str
    token_hash: str
    status: str = TIMED_OUT


def task_token_key(settings: Settings) -> bytes:
    return hmac.new(links.signing_key(settings), _CONTEXT, hashlib.sha256).digest()


def mint(key: bytes, inp: IssueTaskTokenInput) -> str:
    message = "\n".join([inp.tenant_id, inp.job_id, inp.run_id, inp.path, str(inp.attempt)]).encode()
    mac = hmac.new(key, message, hashlib.sha256).digest()
    return TOKEN_PREFIX + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


class MachineCallbackActivities:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine, self.settings = engine, settings

    @activity.defn
    async def issue_task_token(self, inp: IssueTaskTokenInput) -> str:
        token = mint(task_token_key(self.settings), inp)
        row = {
            "token_hash": token_hash(token),
            "tenant_id": uuid.UUID(inp.tenant_id),
            "job_id": uuid.UUID(inp.job_id),
            "run_id": inp.run_id,
            "path": inp.path,
            "attempt": inp.attempt,
            "state": inp.state,
            "status": WAITING,
            "approval_link": False,
            "created_at": utcnow(),
        }
        async with tenant_session(self.engine, inp.tenant_id) as session:
            await session.execute(insert(TaskToken).values(**row).on_conflict_do_nothing())
        return token

    @activity.defn
    async def close_task_token(self, inp: CloseTaskTokenInput) -> None:
        async with tenant_session(self.engine, inp.tenant_id) as session:
            await session.execute(
                update(TaskToken)
                .where(col(TaskToken.token_hash) == inp.token_hash, col(TaskToken.status) == WAITING)
                .values(status=inp.status, closed_at=utcnow())
            )
