"""Tables. Every tenant table carries tenant_id and is guarded by row-level security
(see migrations/versions/0001_initial.py)."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, SmallInteger, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from lodestone.job_priority import DEFAULT as DEFAULT_PRIORITY
from schema.budgets import LlmBudget, LlmBudgetNotice, LlmLedgerEntry
from schema.checkpoints import JobCheckpoint
from schema.columns import _json, _json_as_written, _json_as_written_or_null, _tenant, _ts, utcnow
from schema.conversations import ChannelRoute, Contact, FormRoute, Message, Summary
from schema.job_events import JobEvent, JobStateEvent
from schema.resumable_uploads import ResumableUpload
from schema.statuses import JobStatus
from schema.task_tokens import TaskToken


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str
    webhook_secret: str
    upload_limit_bytes: int | None = Field(default=None, sa_type=BigInteger)
    secret_refs: dict[str, str] = _json()  # references (lodestone.tenant_secrets), never values
    llm_providers: dict[str, Any] = _json()  # named LLM providers (lodestone.llm_providers)
    limits: dict[str, Any] = _json()  # overrides of the deployment's limits (lodestone.tenant_limits)
    # When its waiting jobs last looked for runs that ended without cleanup (activities/running_slots.py).
    slots_checked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime = _ts()


class WorkflowDefinition(SQLModel, table=True):
    __tablename__ = "workflow_definitions"
    __table_args__ = (UniqueConstraint("tenant_id", "key", "version"),)
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = _tenant()
    key: str = Field(index=True)
    version: int
    definition: dict[str, Any] = _json_as_written()
    created_at: datetime = _ts()
    superseded_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class Form(SQLModel, table=True):
    __tablename__ = "forms"
    __table_args__ = (UniqueConstraint("tenant_id", "slug"),)
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = _tenant()
    slug: str
    workflow_key: str
    field_schema: dict[str, Any] = _json()
    created_at: datetime = _ts()


class Upload(SQLModel, table=True):
    __tablename__ = "uploads"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = _tenant()
    key: str
    size: int = Field(sa_type=BigInteger)
    sha256: str
    content_type: str
    created_at: datetime = _ts()


class Submission(SQLModel, table=True):
    __tablename__ = "submissions"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = _tenant()
    workflow_definition_id: uuid.UUID = Field(foreign_key="workflow_definitions.id")
    input: dict[str, Any] = _json_as_written()
    input_upload_id: uuid.UUID | None = Field(default=None, foreign_key="uploads.id")
    input_url: str | None = None
    created_at: datetime = _ts()


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = _tenant()
    submission_id: uuid.UUID = Field(foreign_key="submissions.id")
    workflow_definition_id: uuid.UUID = Field(foreign_key="workflow_definitions.id")
    workflow_key: str = Field(index=True)
    status: str = Field(default=JobStatus.pending, index=True)
    error: str | None = None
    input_key: str | None = None
    created_at: datetime = _ts(index=True)
    updated_at: datetime = _ts()
    # When Temporal accepted the workflow's start; NULL while the outbox still has to start it.
    workflow_started_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    # Starts the outbox tried that Temporal refused, and when it may try again (it backs off).
    outbox_attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    outbox_retry_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    output: Any = _json_as_written_or_null()  # a state-machine job's output once it succeeded
    redrive_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # redrives so far
    parent_job_id: uuid.UUID | None = Field(default=None, foreign_key="jobs.id")  # a child execution's parent
    # When it took one of its tenant's running slots; held while not terminal (activities/running_slots.py).
    slot_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    # 1 (first) to 5: the order of its tenant's jobs waiting for a running slot (0023).
    priority: int = Field(
        default=DEFAULT_PRIORITY, sa_type=SmallInteger, sa_column_kwargs={"server_default": str(DEFAULT_PRIORITY)}
    )


class JobStep(SQLModel, table=True):
    __tablename__ = "job_steps"
    __table_args__ = (UniqueConstraint("job_id", "step_id"),)
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = _tenant()
    job_id: uuid.UUID = Field(foreign_key="jobs.id", index=True)
    step_id: str
    status: str = "running"
    output_key: str | None = None
    attempts: int = 0
    error: str | None = None
    started_at: datetime = _ts()
    finished_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class Artifact(SQLModel, table=True):
    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("job_id", "kind"),)
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = _tenant()
    job_id: uuid.UUID = Field(foreign_key="jobs.id", index=True)
    kind: str
    key: str
    content_type: str
    size: int = Field(sa_type=BigInteger)
    sha256: str
    created_at: datetime = _ts()


class UsageRecord(SQLModel, table=True):
    __tablename__ = "usage_records"
    __table_args__ = (UniqueConstraint("job_id", "step_id"),)
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = _tenant()
    job_id: uuid.UUID = Field(foreign_key="jobs.id", index=True)
    step_id: str
    model: str  # the model that answered
    tokens_in: int
    tokens_out: int
    cost_usd: float
    created_at: datetime = _ts()
    provider: str = Field(default="default", sa_column_kwargs={"server_default": "default"})
    # The models asked before it that did not answer: [{"provider", "model", "error"}].
    fallbacks: list[dict[str, str]] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))


class Delivery(SQLModel, table=True):
    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("job_id", "target_index"),)
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = _tenant()
    job_id: uuid.UUID = Field(foreign_key="jobs.id", index=True)
    target_index: int
    kind: str
    target: str
    webhook_id: str
    status: str = "pending"
    attempts: int = 0
    delivered_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    error: str | None = None  # the last attempt's error while not delivered


class DeliveryAttempt(SQLModel, table=True):
    __tablename__ = "delivery_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "attempt"),)
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = _tenant()
    delivery_id: uuid.UUID = Field(foreign_key="deliveries.id", index=True)
    attempt: int
    webhook_id: str
    status_code: int | None = None
    error: str | None = None
    created_at: datetime = _ts()


class JobFailure(SQLModel, table=True):
    __tablename__ = "job_failures"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = _tenant()
    job_id: uuid.UUID = Field(foreign_key="jobs.id", unique=True)
    error_code: str
    message: str
    failed_step: str | None = None
    temporal_link: str
    created_at: datetime = _ts()
    redriven_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # `lodestone ops redrive`


class IdempotencyKey(SQLModel, table=True):
    __tablename__ = "idempotency_keys"
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", primary_key=True)
    key: str = Field(primary_key=True)
    request_hash: str
    job_id: uuid.UUID = Field(foreign_key="jobs.id")
    created_at: datetime = _ts()


TENANT_TABLES = [
    t.__tablename__
    for t in (
        WorkflowDefinition,
        Form,
        Upload,
        Submission,
        Job,
        JobStep,
        Artifact,
        UsageRecord,
        Delivery,
        DeliveryAttempt,
        JobFailure,
        IdempotencyKey,
        Contact,
        Message,
        Summary,
        ChannelRoute,
        FormRoute,
        JobStateEvent,
        JobEvent,
        TaskToken,
        JobCheckpoint,
        ResumableUpload,
        LlmBudget,
        LlmLedgerEntry,
        LlmBudgetNotice,
    )
]

__all__ = [
    "Artifact",
    "ChannelRoute",
    "Contact",
    "FormRoute",
    "Delivery",
    "DeliveryAttempt",
    "Form",
    "IdempotencyKey",
    "Job",
    "JobCheckpoint",
    "JobEvent",
    "JobFailure",
    "JobStateEvent",
    "JobStep",
    "LlmBudget",
    "LlmBudgetNotice",
    "LlmLedgerEntry",
    "Message",
    "ResumableUpload",
    "Submission",
    "Summary",
    "TaskToken",
    "TENANT_TABLES",
    "Tenant",
    "Upload",
    "UsageRecord",
    "WorkflowDefinition",
    "utcnow",
]
