"""A job's Temporal Priority: its priority (1-5, 1 first) and its tenant as the fairness key.

Every start of a job's workflow carries job_priority(...) (services.outbox.start_job,
services.redrive, a schedule's action); its activities and child workflows inherit it. The
server dispatches a task queue's backlog by priority_key first, then, within one priority,
round-robin over fairness keys (weighted by fairness_weight), so one tenant's backlog does not
hold up another tenant's jobs. Fairness needs the server's dynamic config
matching.enableFairness=true (the dev server gets it while TEMPORAL_FAIRNESS is on); without it
the server still orders by priority, and FIFO within one. docs/fairness.md has the details."""

import uuid

from temporalio.common import Priority

HIGHEST, LOWEST = 1, 5
DEFAULT = 3  # a submission's priority when it names none


def job_priority(tenant_id: uuid.UUID | str, priority: int | None = None) -> Priority:
    """The Priority a job's workflow starts with: `priority` (DEFAULT if None) as the priority
    key, the tenant id as the fairness key."""
    key = DEFAULT if priority is None else priority
    if not HIGHEST <= key <= LOWEST:
        raise ValueError(f"a job's priority is {HIGHEST} to {LOWEST}, not {key}")
    return Priority(priority_key=key, fairness_key=str(tenant_id))
