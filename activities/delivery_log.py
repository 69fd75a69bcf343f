"""The bookkeeping every delivery channel shares: one deliveries row per (job, target) with a
stable id (the webhook-id) for every retry, and one delivery_attempts row per attempt.

A send never writes after it has sent: it returns a SendOutcome, which the workflow hands to
record_delivery_attempt, an activity of its own that retries until the database takes it."""

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from activities import events
from activities.common import LoadedJob, load_job
from lodestone import metrics
from lodestone.db import tenant_session
from lodestone.webhooks import webhook_id
from schema.tables import Artifact, Delivery, DeliveryAttempt, Tenant, utcnow


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
class SendOutcome:
    """What one send did, returned by the send activity so that it is in the workflow's history
    before any database write: the bookkeeping (record_delivery_attempt) comes after."""

    delivery_id: str
    webhook_id: str
    prior_attempts: int  # attempts stored for the target before this send
    sent: bool = True  # False: the target was delivered earlier, nothing was sent
    status_code: int | None = None
    error: str | None = None
    error_type: str | None = None  # None: accepted; else WebhookUnavailable, WebhookRejected, ...
    retryable: bool = False

    @property
    def ok(self) -> bool:
        return self.error_type is None


@dataclass
class AttemptInput:
    """One attempt to store for a target, numbered by the workflow so that a retried record
    stores it once; attempt 0 stores no attempt, only the target's final state."""

    tenant_id: str
    job_id: str
    target_index: int
    kind: str
    attempt: int
    status_code: int | None = None
    error: str | None = None
    error_type: str | None = None
    final: bool = False


@dataclass
class OpenDelivery:
    delivery: Delivery
    loaded: LoadedJob
    tenant: Tenant
    artifacts: list[Artifact]

    @property
    def delivered(self) -> bool:
        return self.delivery.status == "delivered"

    @property
    def target(self) -> dict[str, Any]:
        target: dict[str, Any] = self.loaded.definition["delivery"][self.delivery.target_index]
        return target

    def result(self, attempt: int, code: int) -> DeliveryResult:
        return DeliveryResult(str(self.delivery.id), self.delivery.webhook_id, attempt, code)

    def outcome(self, **kw: Any) -> SendOutcome:
        return SendOutcome(str(self.delivery.id), self.delivery.webhook_id, self.delivery.attempts, **kw)


async def open_delivery(engine: AsyncEngine, inp: DeliveryInput) -> OpenDelivery:
    """The target's row, made on the first attempt and found again on every later one."""
    async with tenant_session(engine, inp.tenant_id) as session:
        loaded = await load_job(session, inp.job_id)
        target = loaded.definition["delivery"][inp.target_index]
        artifacts = (await session.exec(select(Artifact).where(Artifact.job_id == loaded.job.id))).all()
        tenant = await session.get(Tenant, uuid.UUID(inp.tenant_id))
        assert tenant is not None  # the job was found under this tenant
        delivery = await ensure_delivery(
            session,
            inp.tenant_id,
            inp.job_id,
            inp.target_index,
            target,
            webhook_id(inp.job_id, inp.target_index),
        )
    return OpenDelivery(delivery, loaded, tenant, sorted(artifacts, key=lambda a: a.kind))


async def ensure_delivery(
    session: AsyncSession, tenant_id: str, job_id: str, target_index: int, target: dict[str, Any], msg_id: str
) -> Delivery:
    """The (job, target) row, made on the first attempt and found again on every later one."""
    await session.execute(
        insert(Delivery)
        .values(
            id=uuid.uuid4(),
            tenant_id=uuid.UUID(tenant_id),
            job_id=uuid.UUID(job_id),
            target_index=target_index,
            kind=target["type"],
            target=target.get("url") or target["to"],
            webhook_id=msg_id,
            status="pending",
            attempts=0,
        )
        .on_conflict_do_nothing(index_elements=["job_id", "target_index"])
    )
    return (
        await session.exec(
            select(Delivery).where(Delivery.job_id == uuid.UUID(job_id), Delivery.target_index == target_index)
        )
    ).one()


async def record_attempt(
    engine: AsyncEngine,
    tenant_id: str,
    delivery: Delivery,
    status: int | None,
    error: str | None,
    *,
    final: bool = False,
    number: int | None = None,
) -> tuple[int, bool, bool]:
    """Store one attempt; its number, whether this call stored it, and whether this call marked
    the target failed (a retried call finds it failed already). Attempts are numbered per
    target, across runs: a redriven job's attempts follow the earlier ones. `number` given (by
    the workflow), a retried record finds its attempt stored and stores nothing; None takes the
    next free number. A 2xx status marks the target delivered; `final` marks it failed for good
    with the error; number 0 stores no attempt, only that final state."""
    ok = status is not None and 200 <= status < 300
    async with tenant_session(engine, tenant_id) as session:
        # The row lock orders concurrent records of one target.
        row = (await session.exec(select(Delivery).where(Delivery.id == delivery.id).with_for_update())).one()
        number = row.attempts + 1 if number is None else number
        stored = failed_now = False
        if number:
            stored = (
                await session.execute(
                    insert(DeliveryAttempt)
                    .values(
                        id=uuid.uuid4(),
                        tenant_id=uuid.UUID(tenant_id),
                        delivery_id=delivery.id,
                        attempt=number,
                        webhook_id=delivery.webhook_id,
                        status_code=status,
                        error=error,
                        created_at=utcnow(),
                    )
                    .on_conflict_do_nothing(index_elements=["delivery_id", "attempt"])
                )
            ).rowcount == 1  # type: ignore[attr-defined]  # a CursorResult at run time; execute() is typed Result
            row.attempts = max(row.attempts, number)
        if row.status != "delivered":
            if ok:
                row.status, row.delivered_at, row.error = "delivered", utcnow(), None
            else:
                row.error = error or row.error
                if final and row.status != "failed":
                    row.status, failed_now = "failed", True
        session.add(row)
        if stored or failed_now:  # once per attempt, however often its record is retried
            outcome = "delivered" if ok else "failed" if final else "retrying"
            data = {
                "delivery_id": str(row.id),
                "target": row.target,
                "attempt": number,
                "status": outcome,
                "http_status": status,
                "error": error,
            }
            await events.append(session, tenant_id, str(row.job_id), events.DELIVERY, data)
    return number, stored, failed_now


async def find_delivery(engine: AsyncEngine, tenant_id: str, job_id: str, target_index: int) -> Delivery | None:
    async with tenant_session(engine, tenant_id) as session:
        return (
            await session.exec(
                select(Delivery).where(Delivery.job_id == uuid.UUID(job_id), Delivery.target_index == target_index)
            )
        ).first()


class DeliveryLog:
    """Mixed into DeliveryActivities, which brings the engine."""

    engine: AsyncEngine

    @activity.defn
    async def record_delivery_attempt(self, inp: AttemptInput) -> int:
        """Store a send's outcome. Retried on its own until the database takes it: the send it
        records is never repeated for it."""
        delivery = await find_delivery(self.engine, inp.tenant_id, inp.job_id, inp.target_index)
        if delivery is None:  # the send failed before the target's row was made: nothing to mark
            return 0
        number, stored, failed_now = await record_attempt(
            self.engine, inp.tenant_id, delivery, inp.status_code, inp.error, final=inp.final, number=inp.attempt
        )
        ok = inp.error_type is None
        if stored:
            outcome = "delivered" if ok else "failed" if inp.final else "retrying"
            metrics.DELIVERY_ATTEMPTS.labels(inp.kind, outcome).inc()
        # Once per target given up on, however often this record is retried: a numbered attempt
        # counts when this call stored it, attempt 0 (nothing stored) when it marked the row failed.
        if inp.final and not ok and (stored or failed_now):
            metrics.DELIVERY_FAILURES.labels(inp.kind, inp.error_type or "unknown").inc()
        return number
