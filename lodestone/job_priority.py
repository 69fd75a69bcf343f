"""A job's Temporal Priority: its tenant as the fairness key.

Every start of a job's workflow carries job_priority(...) (services.outbox.start_job,
services.redrive, a schedule's action); its activities and child workflows inherit it. Within
one priority the server dispatches a task queue's backlog round-robin over fairness keys, so one
tenant's backlog does not hold up another tenant's jobs. Fairness needs the server's dynamic
config matching.enableFairness=true (the dev server gets it while TEMPORAL_FAIRNESS is on).

A job's own priority (1-5, jobs.priority) is not Temporal's priority key: the server orders the
whole queue by that key before fairness, so a tenant's priority-1 jobs would go before every
other tenant's. It orders the tenant's own jobs waiting for a running slot instead
(activities.running_slots.queue_order), within the tenant's share. docs/fairness.md has the
details."""

import uuid

from temporalio.common import Priority

HIGHEST, LOWEST = 1, 5
DEFAULT = 3  # a submission's priority when it names none


def job_priority(tenant_id: uuid.UUID | str) -> Priority:
    """The Priority a job's workflow starts with: the tenant id as the fairness key."""
    return Priority(fairness_key=str(tenant_id))
