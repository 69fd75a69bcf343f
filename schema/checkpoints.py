"""A failed state machine's checkpoint: what its run had done when it failed (each Task's
result by path, each Wait that ended), saved by the workflow so a redrive resumes at the state
that failed instead of at StartAt (services/redrive.py, lodestone/asl/machine_resume.py)."""

import uuid
from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from schema.columns import _json_as_written, _tenant, _ts


class JobCheckpoint(SQLModel, table=True):
    __tablename__ = "job_checkpoints"
    job_id: uuid.UUID = Field(foreign_key="jobs.id", primary_key=True)
    tenant_id: uuid.UUID = _tenant()
    run_id: str  # the workflow run that saved it
    data: dict[str, Any] = _json_as_written()  # machine_resume.Checkpoint.as_json()
    created_at: datetime = _ts()
