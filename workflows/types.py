"""Inputs and results of every workflow and activity. Add fields with defaults only, so
recorded histories keep replaying."""

from dataclasses import dataclass, field

from temporalio.common import SearchAttributeKey

TENANT_ID = SearchAttributeKey.for_keyword("TenantId")
JOB_ID = SearchAttributeKey.for_keyword("JobId")
WORKFLOW_KEY = SearchAttributeKey.for_keyword("WorkflowKey")


@dataclass
class SubmissionInput:
    tenant_id: str
    job_id: str


@dataclass
class SubmissionResult:
    job_id: str
    status: str
    artifact_ids: list[str] = field(default_factory=list)
    webhook_ids: list[str] = field(default_factory=list)


@dataclass
class JobRef:
    tenant_id: str
    job_id: str


@dataclass
class JobPlan:
    # step id -> the step ids it waits for
    dependencies: dict[str, list[str]]
    outputs: list[str]
    delivery_targets: int
    max_parallel_steps: int


@dataclass
class JobStatusInput:
    tenant_id: str
    job_id: str
    status: str


@dataclass
class StepInput:
    tenant_id: str
    job_id: str
    step_id: str


@dataclass
class StepResult:
    step_id: str
    output_key: str
    model: str
    tokens_in: int
    tokens_out: int
    cost_usd: float


@dataclass
class RenderInput:
    tenant_id: str
    job_id: str
    kind: str  # "html" or "pdf"


@dataclass
class RenderResult:
    artifact_id: str
    key: str
    size: int


@dataclass
class DeliveryInput:
    tenant_id: str
    job_id: str
    target_index: int
    event_time: str


@dataclass
class DeliveryResult:
    delivery_id: str
    webhook_id: str
    attempt: int
    status_code: int


@dataclass
class FailureInput:
    tenant_id: str
    job_id: str
    error_code: str
    message: str
    failed_step: str | None = None
