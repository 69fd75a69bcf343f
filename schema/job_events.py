"""A state-machine job's path: one row per event the interpreter recorded (a state entered or
exited, a retry, a catch, a failure), in order by seq. Keyed (job_id, seq), so a retried
record_machine_events writes each event once."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, UniqueConstraint
from sqlmodel import Field, SQLModel

from schema.columns import _json_as_written_or_null, _tenant


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
