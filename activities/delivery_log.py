"""The bookkeeping every delivery channel shares: one deliveries row per (job, target) with a
stable id (the webhook-id) for every retry, and one delivery_attempts row per attempt."""

import uuid
from dataclasses import dataclass

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from activities.common import LoadedJob, load_job
from lodestone.db import tenant_session
from lodestone.webhooks import webhook_id
from schema.tables import Artifact, Delivery, DeliveryAttempt, Tenant, utcnow
from workflows.types import DeliveryInput, DeliveryResult


@dataclass
class OpenDelivery:
    delivery: Delivery
    loaded: LoadedJob
    tenant: Tenant
    artifacts: list[Artifact]

    @property
    def delivered(self) -> bool:
        return self.delivery.status == "delivered"

    def result(self, attempt: int, code: int) -> DeliveryResult:
        return DeliveryResult(str(self.delivery.id), self.delivery.webhook_id, attempt, code)


async def open_delivery(engine: AsyncEngine, inp: DeliveryInput) -> OpenDelivery:
    """The target's row, made on the first attempt and found again on every later one."""
    async with tenant_session(engine, inp.tenant_id) as session:
        loaded = await load_job(session, inp.job_id)
        target = loaded.definition["delivery"][inp.target_index]
        artifacts = (await session.exec(select(Artifact).where(Artifact.job_id == loaded.job.id))).all()
        tenant = await session.get(Tenant, uuid.UUID(inp.tenant_id))
        assert tenant is not None  # the job was found under this tenant
        await session.execute(insert(Delivery).values(
            id=uuid.uuid4(), tenant_id=uuid.UUID(inp.tenant_id), job_id=loaded.job.id,
            target_index=inp.target_index, kind=target["type"], target=target.get("url") or target["to"],
            webhook_id=webhook_id(inp.job_id, inp.target_index), status="pending", attempts=0,
        ).on_conflict_do_nothing(index_elements=["job_id", "target_index"]))
        delivery = (await session.exec(select(Delivery).where(
            Delivery.job_id == loaded.job.id, Delivery.target_index == inp.target_index))).one()
    return OpenDelivery(delivery, loaded, tenant, sorted(artifacts, key=lambda a: a.kind))


async def record_attempt(engine: AsyncEngine, tenant_id: str, delivery: Delivery,
                         status: int | None, error: str | None, *, final: bool = False) -> int:
    """Store one attempt and return its number. Attempts are numbered per target, across runs:
    a redriven job's attempts (activity attempt 1, 2, ... again) follow the earlier ones
    instead of overwriting them. A 2xx status marks the target delivered; `final` marks it
    failed for good."""
    ok = status is not None and 200 <= status < 300
    async with tenant_session(engine, tenant_id) as session:
        # The row lock orders concurrent records of one target; the number is the next free one.
        row = (await session.exec(select(Delivery).where(Delivery.id == delivery.id).with_for_update())).one()
        number = row.attempts + 1
        session.add(DeliveryAttempt(tenant_id=uuid.UUID(tenant_id), delivery_id=delivery.id, attempt=number,
                                    webhook_id=delivery.webhook_id, status_code=status, error=error))
        row.attempts = number
        if ok:
            row.status, row.delivered_at = "delivered", utcnow()
        elif final and row.status != "delivered":
            row.status = "failed"
        session.add(row)
    return number
