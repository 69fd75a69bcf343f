"""After a fault run: what the receivers got, what the database holds, and what Temporal says,
held against each other."""

import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func
from sqlmodel import select
from temporalio.client import WorkflowExecutionStatus as WES

from lodestone.db import tenant_session
from lodestone.mail import message_id
from lodestone.storage import make_store
from lodestone.webhooks import webhook_id
from schema.tables import (
    Artifact,
    Delivery,
    DeliveryAttempt,
    IdempotencyKey,
    Job,
    JobFailure,
    JobStep,
    Submission,
    UsageRecord,
)
from tests.faults.driver import TERMINAL, Run
from workflows.delivery import EMAIL_RETRY, WEBHOOK_RETRY
from workflows.submission import STEP_RETRY

# The Temporal status each database status may stand beside.
AGREES = {
    "delivered": {WES.COMPLETED},
    "succeeded": {WES.COMPLETED},
    "failed": {WES.FAILED},
    "cancelled": {WES.CANCELED, WES.TERMINATED},
    "pending": {WES.RUNNING},
    "queued": {WES.RUNNING},
    "processing": {WES.RUNNING},
}
STEPS, OUTPUTS, TARGETS = 4, 2, 2


@dataclass
class Outcome:
    runs: int
    submitted: int = 0
    delivered: int = 0
    failed: int = 0
    deliveries: int = 0
    expected_deliveries: int = 0
    duplicates: int = 0
    stuck: int = 0
    mismatches: int = 0
    rows_lost: int = 0
    extra_jobs: int = 0
    max_step_attempts: int = 0
    max_delivery_attempts: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.delivered == self.runs
            and self.deliveries == self.expected_deliveries
            and not self.problems
            and not (self.duplicates or self.stuck or self.mismatches or self.rows_lost or self.extra_jobs)
        )


def receipts(run: Run, outcome: Outcome) -> None:
    hooks, mails = run.hook.counts(), run.sink.by_message_id()
    wanted_hooks = {webhook_id(j, 0) for j in run.jobs.values()}
    wanted_mails = {message_id(webhook_id(j, 1), run.stack.settings.smtp_from) for j in run.jobs.values()}
    outcome.expected_deliveries = len(wanted_hooks) + len(wanted_mails)
    outcome.deliveries = len(wanted_hooks & set(hooks)) + len(wanted_mails & set(mails))
    for name, got in (("webhook-id", hooks), ("Message-ID", mails)):
        outcome.duplicates += sum(n - 1 for n in got.values() if n > 1)
        outcome.problems += [f"{name} {k} received {n} times" for k, n in got.items() if n > 1]
    strays = (set(hooks) - wanted_hooks) | (set(mails) - wanted_mails)
    outcome.problems += [f"unexpected delivery {k}" for k in sorted(strays)]


async def agreement(run: Run, statuses: dict[str, str], outcome: Outcome) -> None:
    for job_id, status in statuses.items():
        temporal = (await run.temporal.get_workflow_handle(job_id).describe()).status
        if status not in TERMINAL or temporal == WES.RUNNING:
            outcome.stuck += 1
            outcome.problems.append(f"job {job_id} stuck: database {status}, Temporal {temporal and temporal.name}")
        if temporal not in AGREES.get(status, set()):
            outcome.mismatches += 1
            outcome.problems.append(f"job {job_id}: database {status}, Temporal {temporal and temporal.name}")


async def rows(run: Run, outcome: Outcome) -> dict[str, str]:
    """Every row a delivered job should have, and the artifacts' objects; the jobs' statuses."""
    ids = [uuid.UUID(j) for j in run.jobs.values()]
    store = make_store(run.stack.settings)
    async with tenant_session(run.engine, run.tenant_id) as s:  # type: ignore[arg-type]
        jobs = {str(i): st for i, st in (await s.exec(select(Job.id, Job.status).where(Job.workflow_key == run.key)))}
        steps = Counter(
            str(j)
            for j in (
                await s.exec(select(JobStep.job_id).where(JobStep.status == "completed", JobStep.job_id.in_(ids)))
            )
        )  # type: ignore[attr-defined]
        usage = Counter(str(j) for j in (await s.exec(select(UsageRecord.job_id).where(UsageRecord.job_id.in_(ids)))))  # type: ignore[attr-defined]
        artifacts = (await s.exec(select(Artifact).where(Artifact.job_id.in_(ids)))).all()  # type: ignore[attr-defined]
        deliveries = (await s.exec(select(Delivery).where(Delivery.job_id.in_(ids)))).all()  # type: ignore[attr-defined]
        accepted = set(
            (
                await s.exec(
                    select(DeliveryAttempt.delivery_id).where(
                        DeliveryAttempt.status_code >= 200, DeliveryAttempt.status_code < 300
                    )
                )
            ).all()
        )  # type: ignore[operator]
        submissions = (
            await s.exec(
                select(func.count())
                .select_from(Submission)
                .join(Job, Job.submission_id == Submission.id)
                .where(Job.workflow_key == run.key)
            )
        ).one()
        keys = (
            await s.exec(
                select(func.count()).select_from(IdempotencyKey).where(IdempotencyKey.key.startswith(f"{run.run_id}-"))
            )
        ).one()  # type: ignore[attr-defined]
        failures = (
            await s.exec(
                select(JobFailure.job_id, JobFailure.failed_step, JobFailure.error_code, JobFailure.message).where(
                    JobFailure.job_id.in_(ids)
                )
            )
        ).all()  # type: ignore[attr-defined]
        outcome.max_step_attempts = (
            await s.exec(select(func.max(JobStep.attempts)).where(JobStep.job_id.in_(ids)))
        ).one() or 0  # type: ignore[attr-defined]
    outcome.max_delivery_attempts = max((d.attempts for d in deliveries), default=0)
    outcome.extra_jobs = len(set(jobs) - set(run.jobs.values()))
    made = Counter(str(a.job_id) for a in artifacts)
    sent = Counter(str(d.job_id) for d in deliveries if d.status == "delivered" and d.id in accepted)
    for job_id, step, code, message in failures:
        outcome.problems.append(f"job {job_id} failed at {step}: {code}: {message[:200]}")
    for job_id in (j for j in run.jobs.values() if jobs.get(j) == "delivered"):  # a failed job is counted as such
        lost = {
            "steps": STEPS - steps[job_id],
            "usage": STEPS - usage[job_id],
            "artifacts": OUTPUTS - made[job_id],
            "deliveries": TARGETS - sent[job_id],
        }
        if any(lost.values()):
            outcome.rows_lost += 1
            outcome.problems.append(f"job {job_id} ({jobs.get(job_id)}) is missing rows: {lost}")
    for a in artifacts:
        if await store.size(a.key) != a.size:
            outcome.rows_lost += 1
            outcome.problems.append(f"artifact {a.key} is not the size its row says")
    if submissions != len(jobs) or keys != len(run.jobs):
        outcome.problems.append(f"{submissions} submissions and {keys} idempotency keys for {len(jobs)} jobs")
    return jobs


async def verify(run: Run) -> Outcome:
    outcome = Outcome(runs=run.cfg.pipelines, submitted=len(run.jobs))
    if run.unsubmitted:
        outcome.problems.append(f"{run.unsubmitted} submissions never got a 202")
    receipts(run, outcome)
    statuses = await rows(run, outcome)
    counts = Counter(statuses.values())
    outcome.delivered, outcome.failed = counts["delivered"], counts["failed"]
    await agreement(run, statuses, outcome)
    return outcome


def budgets() -> dict[str, Any]:
    return {
        "step_attempts": STEP_RETRY.maximum_attempts,
        "delivery_attempts": min(WEBHOOK_RETRY.maximum_attempts or 0, EMAIL_RETRY.maximum_attempts or 0),
    }
