"""Inputs, results and signals of the workflows, and their search attributes. Each activity
module owns its own input and result types. Add fields with defaults only, so recorded
histories keep replaying."""

from dataclasses import dataclass, field
from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from schema.statuses import JobStatus

TENANT_ID = SearchAttributeKey.for_keyword("TenantId")
JOB_ID = SearchAttributeKey.for_keyword("JobId")
WORKFLOW_KEY = SearchAttributeKey.for_keyword("WorkflowKey")
STATUS = SearchAttributeKey.for_keyword("JobStatus")  # the job's status, kept current by its workflow


def job_search_attributes(tenant_id: object, job_id: object, workflow_key: str) -> TypedSearchAttributes:
    """What a submission run starts with, from the API and from a redrive alike."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(TENANT_ID, str(tenant_id)),
            SearchAttributePair(JOB_ID, str(job_id)),
            SearchAttributePair(WORKFLOW_KEY, workflow_key),
            SearchAttributePair(STATUS, JobStatus.pending),
        ]
    )


@dataclass
class SubmissionInput:
    tenant_id: str
    job_id: str
    # A state machine's redrive: resume from the failed run's checkpoint (workflows/machine_children.py).
    resume: bool = False


@dataclass
class ScheduledJobInput:
    """One run of a job schedule: a job of `workflow_key`'s current definition with `input`."""

    tenant_id: str
    schedule_id: str
    workflow_key: str
    input: Any


@dataclass
class ScheduledJobResult:
    job_id: str
    status: str  # the job's, as its workflow ended


@dataclass
class SubmissionResult:
    job_id: str
    status: str
    artifact_ids: list[str] = field(default_factory=list)
    webhook_ids: list[str] = field(default_factory=list)


@dataclass
class MachineResult:
    """A state machine's run: its output is on the job (GET /v1/jobs/{id}), not in the result."""

    job_id: str
    status: str


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
class SummaryInput:
    tenant_id: str
    contact_id: str
    interval_days: int = 15


@dataclass
class SummaryResult:
    pdf_key: str
    message_count: int
    wa_message_id: str
