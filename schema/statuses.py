"""Every status a job can hold: one name each, for the job row, the API's filter, the
workflow (its query and the JobStatus search attribute) and the activities. Plain strings
on the wire and in the database, so recorded histories and rows keep reading."""

from enum import StrEnum


class JobStatus(StrEnum):
    """Every status a job row can hold, in the order a job moves through them."""

    pending = "pending"
    queued = "queued"
    processing = "processing"
    delivered = "delivered"
    failed = "failed"
    cancelled = "cancelled"


# A job in one of these never moves again (a redrive starts it over from pending).
TERMINAL = frozenset({JobStatus.delivered, JobStatus.failed, JobStatus.cancelled})
