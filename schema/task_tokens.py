"""Task tokens of callback Tasks (`.waitForTaskToken`): one row per token issued, keyed by the
SHA-256 of the token (the token itself is never stored), bound to its tenant, job, workflow run
and state entry (path, attempt). `status` leaves `waiting` once, in one UPDATE guarded on it, so
a token is used once however many API processes answer."""

import hashlib
import uuid
from datetime import datetime

from sqlalchemy import DateTime
from sqlmodel import Field, SQLModel

from schema.columns import _tenant, _ts

WAITING = "waiting"
SUCCEEDED = "succeeded"
FAILED = "failed"
TIMED_OUT = "timed_out"  # the Task's TimeoutSeconds or HeartbeatSeconds passed first


class TaskToken(SQLModel, table=True):
    __tablename__ = "task_tokens"
    token_hash: str = Field(primary_key=True)  # hex SHA-256 of the token
    tenant_id: uuid.UUID = _tenant()
    job_id: uuid.UUID = Field(foreign_key="jobs.id", index=True)
    run_id: str  # the workflow run that waits
    path: str
    attempt: int
    state: str
    status: str = WAITING
    approval_link: bool = False  # the token also works, without a bearer token, as an approval link
    created_at: datetime = _ts()
    heartbeat_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    closed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
