"""A job's progress events (job_events), and a state-machine job's path (job_state_events):
one row per event the interpreter recorded (a state entered or exited, a retry, a catch, a
failure), in order by seq. Keyed (job_id, seq), so a retried record_machine_events writes each
event once."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, ForeignKey, UniqueConstraint, Uuid
from sqlmodel import Field, SQLModel

from schema.columns import _json_as_written, _json_as_written_or_null, _tenant, _ts


class JobStateEvent(SQLModel, table=True):
    __tablename__ = "job_state_events"
    __table_args__ = (UniqueConstraint("job_id", "seq"),)
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = _tenant()
    job_id: uuid.UUID = Field(foreign_key="jobs.id")
    seq: int
    at: datetime = Field(sa_type=DateTime(timezone=True))
    kind: str  # entered | exited | retry | caught | failed
    state: str
    path: str
    type: str
    input: Any = _json_as_written_or_null()  # truncated past MACHINE_PATH_VALUE_MAX_BYTES
    output: Any = _json_as_written_or_null()
    error: str | None = None
    cause: str | None = None
    attempt: int | None = None
    delay_seconds: float | None = None
    next: str | None = None


class JobEvent(SQLModel, table=True):
    """A job's progress, as GET /v1/jobs/{id}/events streams it: seq is 1, 2, 3... per job with
    no gaps (activities.events.append); type and data as docs/api.md#job-events lists them."""

    __tablename__ = "job_events"
    job_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True))
    seq: int = Field(primary_key=True)
    tenant_id: uuid.UUID = _tenant()
    type: str
    data: dict[str, Any] = _json_as_written()
    created_at: datetime = _ts()
