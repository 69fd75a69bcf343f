"""Inputs and results of the workflows and their activities, where no activity module owns
them (SendOutcome and AttemptInput live in activities/delivery_log.py, StepFailureInput in
activities/steps.py). Add fields with defaults only, so recorded histories keep replaying."""

from dataclasses import dataclass, field

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

TENANT_ID = SearchAttributeKey.for_keyword("TenantId")
JOB_ID = SearchAttributeKey.for_keyword("JobId")
WORKFLOW_KEY = SearchAttributeKey.for_keyword("WorkflowKey")
STATUS = SearchAttributeKey.for_keyword("JobStatus")  # the job's status, kept current by SubmissionWorkflow


def job_search_attributes(tenant_id: object, job_id: object, workflow_key: str) -> TypedSearchAttributes:
    """What a submission run starts with, from the API and from a redrive alike."""
    return TypedSearchAttributes([
        SearchAttributePair(TENANT_ID, str(tenant_id)), SearchAttributePair(JOB_ID, str(job_id)),
        SearchAttributePair(WORKFLOW_KEY, workflow_key), SearchAttributePair(STATUS, "pending")])


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
    input_url: str | None = None
    # The type of each delivery target ("webhook", "email"); a plan without it (recorded
    # before email targets existed) has only webhooks.
    delivery_kinds: list[str] = field(default_factory=list)
    # Each target's webhook timeout in seconds (0 for email), and the attempt budgets, from the
    # definition and settings; a plan without them (recorded earlier) keeps the built-in ones.
    delivery_timeouts: list[float] = field(default_factory=list)
    step_max_attempts: int = 0
    delivery_max_attempts: int = 0


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
class IngestInput:
    tenant_id: str
    job_id: str
    url: str


@dataclass
class IngestCheckpoint:
    """Heartbeat details: enough for a retried attempt to resume at the next part."""

    upload_id: str
    parts: list[list]  # [number, etag, size]
    bytes_done: int


@dataclass
class IngestResult:
    key: str
    size: int
    parts: int
    parts_uploaded: int  # by the attempt that finished; fewer than parts after a resume
    resumed_from_part: int


@dataclass
class FailureInput:
    tenant_id: str
    job_id: str
    error_code: str
    message: str
    failed_step: str | None = None


@dataclass
class NewMessage:
    """Signal: an inbound message was stored (its WhatsApp message id)."""

    message_id: str


@dataclass
class ConversationInput:
    tenant_id: str
    contact_id: str
    debounce_seconds: float = 5.0
    max_wait_seconds: float = 30.0
    typing_indicator: bool = True
    idle_close_seconds: float = 24 * 3600.0
    batches_per_run: int = 100  # continue-as-new after this many, well before history grows large
    # Carried across continue-as-new.
    pending: list[str] = field(default_factory=list)
    batches_done: int = 0


@dataclass
class ReplyInput:
    tenant_id: str
    contact_id: str
    message_ids: list[str]
    batch_key: str
    typing_indicator: bool = True


@dataclass
class ReplyResult:
    wa_message_id: str
    sent_now: bool  # False when an earlier attempt had already sent it


@dataclass
class SummaryInput:
    tenant_id: str
    contact_id: str
    interval_days: int = 15


@dataclass
class SummaryWindow:
    tenant_id: str
    contact_id: str
    window_start: str
    window_end: str


@dataclass
class SummaryStageInput:
    tenant_id: str
    contact_id: str
    window_end: str
    stage: str  # extract, themes, write
    source_key: str


@dataclass
class SummaryStageResult:
    key: str
    model: str
    tokens_in: int
    tokens_out: int
    cost_usd: float


@dataclass
class TranscriptResult:
    key: str
    message_count: int


@dataclass
class SummaryPdfInput:
    tenant_id: str
    contact_id: str
    window_start: str
    window_end: str
    transcript_key: str
    summary_key: str
    themes_key: str


@dataclass
class SendDocumentInput:
    tenant_id: str
    contact_id: str
    pdf_key: str
    window_end: str


@dataclass
class SendDocumentResult:
    media_id: str
    wa_message_id: str


@dataclass
class RecordSummaryInput:
    tenant_id: str
    contact_id: str
    window_start: str
    window_end: str
    message_count: int
    pdf_key: str
    media_id: str
    wa_message_id: str
    usage: list[SummaryStageResult] = field(default_factory=list)


@dataclass
class SummaryResult:
    pdf_key: str
    message_count: int
    wa_message_id: str


@dataclass
class PurgeInput:
    retention_days: int


@dataclass
class PurgeResult:
    tenants: int
    purged: int
