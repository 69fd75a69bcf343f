"""Every status a job can hold: one name each, for the job row, the API's filter, the
workflow (its query and the JobStatus search attribute) and the activities. Plain strings
on the wire and in the database, so recorded histories and rows keep reading."""

from enum import StrEnum


class JobStatus(StrEnum):
    """Every status a job row can hold, in the order a job moves through them. A pipeline
    job ends `delivered`; a state-machine job ends `succeeded` (its machine reached Succeed
    or an End state) or `failed`."""

    pending = "pending"
    queued = "queued"
    processing = "processing"
    paused_budget = "paused_budget"  # waiting for its LLM budget (raised, or the next period): not terminal
    delivered = "delivered"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


# A job in one of these never moves again (a redrive starts it over from pending).
TERMINAL = frozenset({JobStatus.delivered, JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})
